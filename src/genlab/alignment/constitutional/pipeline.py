"""Constitutional AI (Bai et al. 2022, "Constitutional AI: Harmlessness from AI Feedback", arXiv:2212.08073).

Harmlessness is taught from a short list of principles (a constitution,
:mod:`genlab.alignment.constitution`) instead of human labels, in up to three stages on red-team
prompts -- requests that tempt a model into rude, unsafe or dishonest answers:

1. **critique → revision** (:mod:`~genlab.alignment.critique_revision`): the model answers, critiques
   its answer against a principle and revises it; the rows are a supervised (SL-CAI) dataset.
2. **AI feedback** (:mod:`~genlab.alignment.rlaif`): the model samples two answers per prompt and
   judges which better follows a principle, by the log-likelihood of "A" vs "B", asked in both
   orders; the verdicts are preference pairs ``{prompt, chosen, rejected, principle, confidence}``.
3. **DPO** (:mod:`~genlab.alignment.dpo.training`) on those pairs. The paper trains a preference model and
   runs PPO (RL-CAI); DPO optimises the same preference objective without either, and the pairs
   file is also exactly what ``genlab align reward`` reads.

Here both feedback and DPO start from the base model (the paper samples from its SL-CAI model);
fine-tune on the stage-1 dataset first and point ``model`` at the result to follow the paper.
Each stage is a child run of one "constitutional" lineage run; datasets are written atomically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genlab.alignment.constitutional.recipe import ConstitutionalRecipe
from genlab.alignment.dpo.training import DpoResult, dpo_session, train_dpo
from genlab.errors import GenlabError
from genlab.lineage import LineageStore, record_run


@dataclass
class ConstitutionalResult:
    run_id: str
    prompts: int
    revisions: int = 0  # rows of the supervised dataset (one per prompt)
    revisions_changed: int = 0  # ... whose revision differs from the first answer
    sft_dataset: str | None = None
    pairs: int = 0  # AI preference pairs kept
    judged: int = 0  # comparisons made
    skipped_identical: int = 0
    mean_confidence: float | None = None
    orders_agree: float | None = None  # share of comparisons both orders decided the same way
    pairs_file: str | None = None
    dpo: DpoResult | None = None
    child_runs: dict[str, str] = field(default_factory=dict)  # stage -> run id
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> wall time

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> tuple[str, list[str], list[list[Any]]]:
        rows: list[list[Any]] = [["red-team prompts", self.prompts, ""]]
        if "critique_revise" in self.child_runs:
            rows.append(["revisions (supervised rows)", self.revisions, f"{self.revisions_changed} changed the answer"])
        if "ai_feedback" in self.child_runs:
            note = f"of {self.judged} compared; {self.skipped_identical} had identical answers"
            rows.append(["AI preference pairs", self.pairs, note])
            rows.append(["mean judge confidence", _fmt(self.mean_confidence), "max(P, 1-P), both orders averaged"])
            rows.append(["both orders agree", _fmt(self.orders_agree), "share of comparisons"])
        if self.dpo is not None:
            before, after, held = self.dpo.before, self.dpo.after, self.dpo.held_out_pairs
            labels = {"reward_accuracy": "held-out preference accuracy", "loglik_accuracy": "held-out: prefers chosen"}
            for key, label in labels.items():
                if key in before:
                    change = f"{before[key]:.3f} -> {after[key]:.3f}"
                    rows.append([label, change, f"{held} held-out pairs, before -> after"])
            rows.append(["DPO adapter", self.dpo.output_path, f"{self.dpo.train_pairs} training pairs"])
        for stage, seconds in self.seconds.items():
            rows.append([f"{stage} seconds", f"{seconds:.1f}", self.child_runs.get(stage, "")])
        return "Constitutional AI", ["", "value", "note"], rows


def _fmt(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


def run_constitutional(
    recipe: ConstitutionalRecipe,
    *,
    store: LineageStore,
    recipe_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
) -> ConstitutionalResult:
    """``genlab align constitutional``: the enabled stages in order, each a child run (module docstring)."""
    from genlab.alignment.constitution import load_constitution, load_prompts
    from genlab.alignment.dpo_data import uses_chat
    from genlab.generation.engine import GenerationEngine
    from genlab.models.load import load_model
    from genlab.tuning.assemble import resolve_data_path

    constitution_path = resolve_data_path(recipe.constitution, recipe_dir)
    prompts_path = resolve_data_path(recipe.prompts, recipe_dir)
    constitution = load_constitution(constitution_path)
    prompts = load_prompts(prompts_path, limit=recipe.limit)
    # The DPO stage's session first: a fresh run over unfinished checkpoints (or a resume with none) stops here.
    session = dpo_session(recipe.dpo_recipe(Path()), resume=resume, progress=progress, callbacks=callbacks) if recipe.stages.dpo else None
    with record_run("constitutional", {"recipe": recipe.model_dump()}, store=store) as run:
        run.use(constitution_path, "constitution", {"principles": len(constitution.principles)})
        run.use(prompts_path, "dataset", {"role": "red-team prompts", "rows": len(prompts)})
        loaded = load_model(recipe.model)
        if loaded.path is not None:
            run.use(loaded.path, "model", {"model": loaded.name})
        stage = _Stage(
            recipe, constitution, prompts, GenerationEngine(loaded, batch_size=recipe.generation.batch_size),
            uses_chat(loaded, recipe.chat), run, ConstitutionalResult(run.id, len(prompts)), progress, session,
        )  # fmt: skip
        if recipe.stages.critique_revise:
            stage.timed("critique_revise", stage.critique_revise)
        if recipe.stages.ai_feedback:
            stage.timed("ai_feedback", stage.ai_feedback)
        if recipe.stages.dpo:
            stage.timed("dpo", stage.dpo)
        run.log_metrics(_summary(stage.result))
        return stage.result


@dataclass
class _Stage:
    """The pipeline's shared state; each stage method is one child run of the constitutional run."""

    recipe: ConstitutionalRecipe
    constitution: Any
    prompts: list[str]
    engine: Any  # GenerationEngine
    chat: bool
    run: Any
    result: ConstitutionalResult
    progress: bool
    session: Any  # the DPO stage's TrainerSession (None: the stage is off)
    pairs: list[Any] = field(default_factory=list)

    def timed(self, name: str, stage: Any) -> None:
        import time

        start = time.perf_counter()
        stage()
        self.result.seconds[name] = time.perf_counter() - start

    def _child(self, kind: str, config: dict[str, Any]) -> Any:
        return record_run(kind, {**config, "parent": self.run.id}, store=self.run.store)

    def _config(self) -> dict[str, Any]:
        return {"recipe": self.recipe.name, "constitution": self.constitution.model_dump()}

    def critique_revise(self) -> None:
        from genlab.alignment.critique_revision import (
            critique_and_revise,
            write_revisions,
        )

        recipe, result = self.recipe, self.result
        with self._child("critique_revision", self._config()) as child:
            self.run.add_child(child)
            rows = critique_and_revise(
                self.engine, self.prompts, self.constitution, recipe.generation.settings(), chat=self.chat,
                seed=recipe.seed, progress=self.progress,
            )  # fmt: skip
            path = write_revisions(child.dir / "critique-revision.jsonl", rows)
            child.log_artifact(path, "dataset", {"role": "supervised", "rows": len(rows)})
            result.revisions, result.revisions_changed = len(rows), sum(r.changed for r in rows)
            child.log_metrics({"revisions": float(len(rows)), "revisions_changed": float(result.revisions_changed)})
            result.sft_dataset, result.child_runs["critique_revise"] = str(path), child.id

    def ai_feedback(self) -> None:
        from genlab.alignment.dpo_data import write_pairs
        from genlab.alignment.rlaif import ai_preference_pairs

        recipe, result = self.recipe, self.result
        with self._child("ai_feedback", self._config()) as child:
            self.run.add_child(child)
            outcome = ai_preference_pairs(
                self.engine, self.prompts, self.constitution, recipe.generation.settings(), chat=self.chat,
                seed=recipe.seed + 1, both_orders=recipe.judge.both_orders, min_confidence=recipe.judge.min_confidence,
                progress=self.progress,
            )  # fmt: skip
            self.pairs = outcome.pairs
            path = write_pairs(child.dir / "ai-preferences.jsonl", outcome.pairs)
            child.log_artifact(path, "dataset", {"role": "pairs", "rows": len(outcome.pairs), "labels": "ai"})
            result.pairs, result.judged = len(outcome.pairs), outcome.judged
            result.skipped_identical = outcome.skipped_same
            result.mean_confidence, result.orders_agree = outcome.mean_confidence, outcome.orders_agree
            metrics = {
                "pairs": float(len(outcome.pairs)), "judged": float(outcome.judged),
                "mean_confidence": outcome.mean_confidence, "orders_agree": outcome.orders_agree,
            }  # fmt: skip
            child.log_metrics({k: v for k, v in metrics.items() if not math.isnan(v)})
            result.pairs_file, result.child_runs["ai_feedback"] = str(path), child.id

    def dpo(self) -> None:
        if len(self.pairs) < 2:
            raise GenlabError(
                f"the AI judge kept {len(self.pairs)} preference pair(s) and DPO needs at least 2: "
                "raise limit, or lower judge.min_confidence."
            )
        pairs_file = Path(self.result.pairs_file or "")
        dpo_recipe = self.recipe.dpo_recipe(pairs_file)
        loaded = self.engine.loaded
        with self._child("dpo", {"recipe": dpo_recipe.model_dump()}) as child:
            self.run.add_child(child)
            if loaded.path is not None:
                child.use(loaded.path, "model", {"model": loaded.name})
            child.use(pairs_file, "dataset", {"role": "pairs", "rows": len(self.pairs), "labels": "ai"})
            self.result.dpo = train_dpo(loaded, self.pairs, dpo_recipe, run=child, session=self.session)
            self.result.child_runs["dpo"] = child.id


def _summary(result: ConstitutionalResult) -> dict[str, float]:
    summary = {"prompts": float(result.prompts), "revisions": float(result.revisions), "pairs": float(result.pairs)}
    if result.mean_confidence is not None and not math.isnan(result.mean_confidence):
        summary["mean_confidence"] = result.mean_confidence
    if result.dpo is not None:
        summary.update({f"dpo_before_{k}": v for k, v in result.dpo.before.items()})
        summary.update({f"dpo_after_{k}": v for k, v in result.dpo.after.items()})
    return summary
