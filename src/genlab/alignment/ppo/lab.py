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
   logging reward, KL, entropy, value loss and beta per step;
4. save the adapter (with its base's fingerprint), score the held-out summaries again, and measure
   the KL of the final policy from the reference on the held-out prompts.

Everything is recorded in one lineage run of kind ``ppo``: the model, starting adapter and data as
inputs, the new adapter and the before/after summaries as outputs, the per-step and final metrics.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from genlab.alignment.ppo.algorithm import PPOStats, PPOTrainer
from genlab.alignment.ppo.recipe import PpoRecipe
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


def run_ppo(recipe: PpoRecipe, *, store: LineageStore, recipe_dir: Path | None = None, progress: bool = True) -> PpoResult:
    """Run the lab (see the module docstring), recording into ``store``; return the before/after figures."""
    with record_run("ppo", {"recipe": recipe.model_dump()}, store=store) as run:
        return _run(recipe, recipe_dir, run, progress)


def _run(recipe: PpoRecipe, recipe_dir: Path | None, run: Any, progress: bool) -> PpoResult:
    from transformers import set_seed

    from genlab.alignment.reward import load_reward
    from genlab.models.adapters import base_fingerprint
    from genlab.tuning.lora.adapter import prepare

    start = time.perf_counter()
    reward_fn = load_reward(recipe.reward)  # first: a bad spec fails before any model is loaded
    loaded = _load_policy_base(recipe, run)
    train_rows, held_out = _split(recipe, recipe_dir, run)
    chat = _uses_chat(recipe, loaded)
    train_prompts = _prompts(train_rows, loaded, recipe, chat, recipe.ppo.max_new_tokens)
    held_out_prompts = _prompts(held_out, loaded, recipe, chat, recipe.evaluation.max_new_tokens)

    before, before_texts = _score(loaded, held_out, held_out_prompts, recipe, chat)
    before["kl"] = 0.0  # the new adapter starts with B = 0: the policy is the reference exactly
    fingerprint = base_fingerprint(loaded)  # before peft wraps the weights
    set_seed(recipe.ppo.seed)  # LoRA's A matrices are drawn here
    policy = prepare(loaded, recipe.lora)
    trainer = PPOTrainer(policy, loaded.tokenizer, reward_fn, recipe.ppo, add_special_tokens=not chat)
    history = trainer.train(train_prompts, callback=_step_logger(run, recipe.ppo.steps, progress))

    adapter = _save(policy, loaded, recipe, run, fingerprint)
    tuned = replace(loaded, name=f"{loaded.name}+{recipe.name}", model=policy)
    after, after_texts = _score(tuned, held_out, held_out_prompts, recipe, chat)
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


def _load_policy_base(recipe: PpoRecipe, run: Any) -> Any:
    from genlab.models.adapters import merge_adapter, resolve_adapter
    from genlab.models.load import load_model

    loaded = load_model(recipe.model)
    if loaded.path is not None:
        run.use(loaded.path, "model", {"model": loaded.name})
    if recipe.adapter is not None:
        folder = resolve_adapter(recipe.adapter)
        run.use(folder, "adapter", {"base": loaded.name, "role": "starting policy"})
        loaded = merge_adapter(loaded, folder)
    return loaded


def _split(recipe: PpoRecipe, recipe_dir: Path | None, run: Any) -> tuple[list[Any], list[Any]]:
    from genlab.data.loaders import load_examples
    from genlab.data.splits import split_examples
    from genlab.tuning.assemble import resolve_data_path

    data = recipe.data
    path = resolve_data_path(data.path, recipe_dir)
    rows = load_examples(path, input_field=data.input_field, target_field=data.target_field, limit=data.limit)
    size = int(data.validation_size) if data.validation_size >= 1 else data.validation_size
    train_rows, held_out = split_examples(rows, test_size=size, seed=data.split_seed)
    source = _data_file(path)
    if source is not None:
        run.use(source, "dataset", {"input_field": data.input_field, "target_field": data.target_field})
    limit = recipe.evaluation.limit
    return train_rows, held_out[:limit] if limit else held_out


def _data_file(path: str) -> Path | None:
    """The file behind a data path, for lineage: a builtin set's JSONL, or the file itself."""
    from genlab.data.builtin import BUILTIN_DIALOGUES, BUILTIN_HEATED

    builtin = {"builtin": BUILTIN_DIALOGUES, "builtin:dialogues": BUILTIN_DIALOGUES, "builtin:heated": BUILTIN_HEATED}
    if path in builtin:
        return builtin[path]
    return Path(path) if Path(path).is_file() else None


def _uses_chat(recipe: PpoRecipe, loaded: Any) -> bool:
    from genlab.prompting.chat import has_chat_template

    return recipe.data.chat and has_chat_template(loaded.tokenizer) and not loaded.is_encoder_decoder


def _prompts(rows: list[Any], loaded: Any, recipe: PpoRecipe, chat: bool, max_new_tokens: int) -> list[str]:
    from genlab.prompting.icl import build_prompt
    from genlab.prompting.templates import get_template

    template = get_template(recipe.data.template)
    return [
        build_prompt(
            template, row, None, 0, tokenizer=loaded.tokenizer, context_window=loaded.context_window,
            max_new_tokens=max_new_tokens, chat=chat, is_encoder_decoder=loaded.is_encoder_decoder,
        ).text  # fmt: skip
        for row in rows
    ]


def _score(
    loaded: Any, rows: list[Any], prompts: list[str], recipe: PpoRecipe, chat: bool
) -> tuple[dict[str, float], list[str]]:
    """Greedy summaries of the held-out prompts: toxicity mean and (population) std, ROUGE-1."""
    from genlab.evaluation.metrics.rouge import rouge
    from genlab.evaluation.metrics.toxicity import load_toxicity_scorer
    from genlab.generation import GenerationEngine, GenerationSettings
    from genlab.prompting.templates import get_template

    settings = GenerationSettings(max_new_tokens=recipe.evaluation.max_new_tokens)
    stop = get_template(recipe.data.template).stop
    if not chat and stop:  # a plain prompt's answer ends where the template's next shot would start
        settings = settings.with_overrides(stop=stop)
    was_training = loaded.model.training
    loaded.model.eval()
    engine = GenerationEngine(loaded, batch_size=recipe.evaluation.batch_size)
    completions = engine.generate(prompts, settings, preformatted=chat)
    loaded.model.train(was_training)
    texts = [c.text.strip() for c in completions]
    toxic = load_toxicity_scorer().score(texts)
    scores = {
        "toxicity_mean": statistics.fmean(toxic),
        "toxicity_std": statistics.pstdev(toxic),
        "rouge1": rouge(texts, [row.target or "" for row in rows])["rouge1"],
    }
    return scores, texts


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
    from genlab.home import genlab_home
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
