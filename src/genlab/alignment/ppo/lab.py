"""The third lab: a summariser made less toxic by PPO against a non-toxicity reward, measured before and after.

The course's lab fine-tunes FLAN-T5 with PPO and a hate-speech classifier as the reward, and reports
the toxicity of its summaries before and after (12.8% less with ten PPO steps). Here the policy is a
LoRA adapter on any causal or seq2seq model (by default SmolLM2-135M-Instruct), optionally started
from an earlier LoRA adapter (merged into the base first: "a summarisation policy, base or
LoRA-tuned"); the reference is the same weights with the new adapter switched off. The data are
dialogues with heated, rude language, so a summary that repeats the insults scores as toxic.

``genlab align ppo RECIPE``:

1. split the data (seeded) into prompts to train on and held-out prompts;
2. score the held-out summaries of the starting policy (greedy): toxicity mean and spread, ROUGE-1;
3. run PPO (:mod:`genlab.alignment.ppo.algorithm`) with reward = the recipe's reward on each sampled summary,
   logging reward, KL, entropy, value loss and beta per step, with checkpoints every
   ``ppo.save_every`` steps and at Ctrl-C that ``--resume`` continues from (:mod:`.checkpointing`);
4. save the adapter (with its base's fingerprint), score the held-out summaries again, and measure
   the KL of the final policy from the reference on the held-out prompts.

Everything is recorded in one lineage run of kind ``ppo``: the model, starting adapter and data as
inputs, the new adapter and the before/after summaries as outputs, the per-step and final metrics.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from genlab.alignment.held_out import score_answers
from genlab.alignment.ppo.algorithm import PPOStats, PPOTrainer
from genlab.alignment.ppo.checkpointing import PpoCheckpoints
from genlab.alignment.ppo.recipe import PpoRecipe, ppo_checkpoints
from genlab.alignment.prompt_rows import load_starting_model, prompt_texts, split_prompt_rows, uses_chat
from genlab.home import genlab_home
from genlab.lineage import LineageStore, record_run


@dataclass
class PpoResult:
    run_id: str
    adapter_path: str
    before: dict[str, float]  # toxicity_mean, toxicity_std, rouge1, kl
    after: dict[str, float]
    relative_toxicity_change: float  # percent; negative: less toxic
    rouge1_change_points: float  # ROUGE-1 x 100, after - before
    steps: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> tuple[str, list[str], list[list[str]]]:
        b, a, change = self.before, self.after, self.relative_toxicity_change
        std_change = a["toxicity_std"] - b["toxicity_std"]
        rows = [
            ["toxicity mean", f"{b['toxicity_mean']:.4f}", f"{a['toxicity_mean']:.4f}", f"{change:+.1f}%"],
            ["toxicity std", f"{b['toxicity_std']:.4f}", f"{a['toxicity_std']:.4f}", f"{std_change:+.4f}"],
            ["ROUGE-1", f"{b['rouge1']:.4f}", f"{a['rouge1']:.4f}", f"{self.rouge1_change_points:+.2f} points"],
            ["KL from reference (nats)", f"{b['kl']:.3f}", f"{a['kl']:.3f}", f"{a['kl'] - b['kl']:+.3f}"],
        ]  # fmt: skip
        title = f"PPO with a KL penalty: {len(self.steps)} steps, {self.seconds / 60:.1f} min (run {self.run_id})"
        return title, ["metric", "before", "after", "change"], rows


# --- the lab -------------------------------------------------------------------------------------


def run_ppo(
    recipe: PpoRecipe,
    *,
    store: LineageStore,
    recipe_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
) -> PpoResult:
    """Run the lab (see the module docstring), recording into ``store``; return the before/after figures.

    Checkpoints go to ``$GENLAB_HOME/ppo/<name>/checkpoints`` every ``ppo.save_every`` steps and at a
    Ctrl-C; ``resume`` continues from the newest complete one (:mod:`.checkpointing`). ``callbacks``
    are transformers TrainerCallbacks, called as a Trainer would around PPO's steps.
    """
    checkpoints = PpoCheckpoints(ppo_checkpoints(recipe), name=recipe.name, resume=resume)
    config: dict[str, Any] = {"recipe": recipe.model_dump()}
    if checkpoints.start_from is not None:
        config["resumed_from"] = str(checkpoints.start_from)
    with record_run("ppo", config, store=store) as run:
        return _run(recipe, recipe_dir, run, progress, checkpoints, callbacks)


def _run(
    recipe: PpoRecipe, recipe_dir: Path | None, run: Any, progress: bool, checkpoints: PpoCheckpoints, callbacks: Sequence[Any]
) -> PpoResult:
    from transformers import set_seed

    from genlab.alignment.reward import load_reward
    from genlab.models.adapters import base_fingerprint
    from genlab.tuning.lora.adapter import prepare

    start = time.perf_counter()
    reward_fn = load_reward(recipe.reward)  # first: a bad spec fails before any model is loaded
    loaded = load_starting_model(recipe.model, recipe.adapter, run)
    train_rows, held_out = _split(recipe, recipe_dir, run)
    chat = uses_chat(recipe.data, loaded)
    train_prompts = prompt_texts(train_rows, loaded, recipe.data, recipe.ppo.max_new_tokens)
    held_out_prompts = prompt_texts(held_out, loaded, recipe.data, recipe.evaluation.max_new_tokens)

    before, before_texts = score_answers(loaded, held_out, held_out_prompts, recipe, None, chat=chat)
    before["kl"] = 0.0  # the new adapter starts with B = 0: the policy is the reference exactly
    fingerprint = base_fingerprint(loaded)  # before peft wraps the weights
    set_seed(recipe.ppo.seed)  # LoRA's A matrices are drawn here
    policy = prepare(loaded, recipe.lora)
    trainer = PPOTrainer(policy, loaded.tokenizer, reward_fn, recipe.ppo, add_special_tokens=not chat)
    logger = _step_logger(run, recipe.ppo.steps, progress)
    history = checkpoints.train(trainer, train_prompts, save_every=recipe.ppo.save_every, callbacks=callbacks, on_stats=logger)

    adapter = _save(policy, loaded, recipe, run, fingerprint)
    checkpoints.finish()
    tuned = replace(loaded, name=f"{loaded.name}+{recipe.name}", model=policy)
    after, after_texts = score_answers(tuned, held_out, held_out_prompts, recipe, None, chat=chat)
    after["kl"] = trainer.kl_from_reference(held_out_prompts, seed=recipe.ppo.seed)
    _write_summaries(run, held_out, before_texts, after_texts)

    toxicity_before = before["toxicity_mean"]
    change = 100.0 * (after["toxicity_mean"] - toxicity_before) / toxicity_before if toxicity_before > 0 else 0.0
    points = 100.0 * (after["rouge1"] - before["rouge1"])
    run.log_metrics({f"before_{k}": v for k, v in before.items()})
    run.log_metrics({f"after_{k}": v for k, v in after.items()})
    run.log_metrics({"relative_toxicity_change": change, "rouge1_change_points": points})
    seconds = time.perf_counter() - start
    run.log_metric("seconds", seconds)
    return PpoResult(run.id, str(adapter), before, after, change, points, [s.to_dict() for s in history], seconds)


def _split(recipe: PpoRecipe, recipe_dir: Path | None, run: Any) -> tuple[list[Any], list[Any]]:
    train_rows, held_out = split_prompt_rows(recipe.data, recipe_dir, run)
    limit = recipe.evaluation.limit
    return train_rows, held_out[:limit] if limit else held_out


def _step_logger(run: Any, steps: int, progress: bool) -> Any:
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="ppo", unit="step", file=sys.stderr)

    def log(stats: PPOStats) -> None:
        for name in ("reward_mean", "kl", "entropy", "value_loss", "policy_loss", "clip_fraction", "beta"):
            run.log_metric("reward" if name == "reward_mean" else name, getattr(stats, name), step=stats.step)
        if bar is not None:
            bar.update(1)
            bar.set_postfix({"reward": f"{stats.reward_mean:.3f}", "kl": f"{stats.kl:.3f}"}, refresh=True)
            if bar.n >= steps:
                bar.close()

    return log


def _save(policy: Any, loaded: Any, recipe: PpoRecipe, run: Any, fingerprint: str) -> Path:
    from genlab.models.adapters import save_adapter
    from genlab.training.saving import free_folder

    folder = free_folder(genlab_home() / "adapters", recipe.name)
    extra = {"recipe": recipe.name, "reward": recipe.reward, "starting_adapter": recipe.adapter}
    save_adapter(policy, folder, base=loaded, method="ppo", run_id=run.id, extra=extra, fingerprint=fingerprint)
    run.log_artifact(folder, "adapter", {"method": "ppo", "base": loaded.name})
    return folder


def _write_summaries(run: Any, rows: list[Any], before: list[str], after: list[str]) -> None:
    from genlab.atomic import atomic_write_text

    lines = [
        json.dumps({"id": row.id, "input": row.input, "reference": row.target, "before": b, "after": a}) + "\n"
        for row, b, a in zip(rows, before, after, strict=True)
    ]
    path = atomic_write_text(run.dir / "summaries.jsonl", "".join(lines))
    run.log_artifact(path, "predictions", {"task": "summarize", "n": len(rows), "columns": "before/after"})
