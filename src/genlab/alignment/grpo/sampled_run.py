"""One run of a sampled-reward method through a trl trainer (GRPO and RLOO share it).

1. build the recipe's reward functions (first: a bad spec fails before any model is loaded);
2. load the starting policy (a LoRA adapter merged in when the recipe names one), split the prompts;
3. score the held-out prompts' greedy answers (:mod:`genlab.alignment.held_out`);
4. train a fresh LoRA adapter with trl's trainer inside genlab's :class:`TrainerSession`
   (lineage losses, progress, Ctrl-C checkpoint, ``--resume``); the reference is the same model with
   the adapter switched off, so the weights are held once;
5. save the adapter with its base's fingerprint, score the held-out answers again, measure the KL
   from the reference, and return the :class:`MethodResult` with a before/after table.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import datasets
from transformers import set_seed

from genlab.alignment.grpo.recipe import SampledRewardRecipe
from genlab.alignment.held_out import kl_from_reference, score_answers
from genlab.alignment.prompt_rows import (
    load_starting_model,
    prompt_texts,
    split_prompt_rows,
    trl_prompt_rows,
    uses_chat,
)  # fmt: skip
from genlab.alignment.rewards import build_reward_functions
from genlab.alignment.trl_outputs import run_figures, save_adapter_output, trl_session
from genlab.atomic import atomic_write_text
from genlab.errors import GenlabError
from genlab.lineage import record_run
from genlab.methods import MethodResult, RunOptions, TerminalTable
from genlab.models.adapters import base_fingerprint
from genlab.tuning.lora.adapter import peft_config

# trl's logged names -> the run's metric names (per step)
SAMPLED_REWARD_METRICS = {
    "loss": "train_loss",
    "reward": "reward",
    "reward_std": "reward_std",
    "kl": "kl",
    "entropy": "entropy",
    "completions/mean_length": "completion_length",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
}
ROWS = (  # (metric, label, format) of the before/after table
    ("reward_mean", "recipe reward (held out, greedy)", "{:.4f}"),
    ("toxicity_mean", "toxicity mean", "{:.4f}"),
    ("toxicity_std", "toxicity std", "{:.4f}"),
    ("rouge1", "ROUGE-1", "{:.4f}"),
    ("kl", "KL from reference (nats)", "{:.3f}"),
)


@dataclass(frozen=True)
class TrlAlgorithm:
    """What differs between the sampled-reward methods: the name, trl's classes and their own settings."""

    name: str  # the method's name and lineage run kind
    title: str  # for the table
    trainer_class: type
    config_class: type
    own_settings: Callable[[Any], Mapping[str, Any]]  # recipe.training -> the algorithm's own config keys


def run_sampled_reward_method(recipe: SampledRewardRecipe, options: RunOptions, algorithm: TrlAlgorithm) -> MethodResult:
    """Steps 1-5 of the module docstring."""
    rewards = build_reward_functions(recipe.rewards, options.recipe_dir)
    config = {"recipe": recipe.model_dump(), "resume": options.resume}
    with record_run(algorithm.name, config, store=options.store) as run:
        return _run(recipe, options, algorithm, rewards, run)


def _run(recipe: Any, options: RunOptions, algorithm: TrlAlgorithm, rewards: Any, run: Any) -> MethodResult:
    training = recipe.training
    loaded = load_starting_model(recipe.model, recipe.adapter, run)
    if loaded.is_encoder_decoder:
        raise GenlabError(f"{algorithm.title} through trl trains decoder-only models, and {loaded.name!r} is an encoder-decoder model.")
    train_rows, held_out = split_prompt_rows(recipe.data, options.recipe_dir, run)
    held_out = held_out[: recipe.evaluation.limit] if recipe.evaluation.limit else held_out
    if len(train_rows) < training.prompts_per_step:
        raise GenlabError(
            f"{len(train_rows)} training prompts are fewer than training.prompts_per_step={training.prompts_per_step}."
        )
    chat = uses_chat(recipe.data, loaded)
    train_prompts = prompt_texts(train_rows, loaded, recipe.data, training.max_new_tokens)
    held_prompts = prompt_texts(held_out, loaded, recipe.data, recipe.evaluation.max_new_tokens)
    before, before_texts = score_answers(loaded, held_out, held_prompts, recipe, rewards, chat=chat) if held_out else ({}, [])
    if held_out:
        before["kl"] = 0.0  # the new adapter starts with B = 0: the policy is the reference exactly

    fingerprint = base_fingerprint(loaded)  # before peft wraps the weights
    set_seed(training.seed)  # LoRA's A matrices are drawn when trl wraps the model
    session = trl_session(algorithm.name, recipe, options, run, SAMPLED_REWARD_METRICS)
    functions, weights = rewards
    trainer = algorithm.trainer_class(
        model=loaded.model,
        reward_funcs=functions,
        args=algorithm.config_class(
            **session.arguments(save_every=training.save_every, log_every=training.log_every, seed=training.seed),
            **_shared_settings(training, weights),
            **algorithm.own_settings(training),
        ),
        train_dataset=datasets.Dataset.from_list(trl_prompt_rows(train_rows, train_prompts)),
        processing_class=loaded.tokenizer,
        peft_config=peft_config(loaded, recipe.lora),
        callbacks=session.callbacks,
    )
    trained = session.train(trainer)
    policy = trained.trainer.model
    policy.eval()
    extra = {"recipe": recipe.name, "rewards": dict(recipe.rewards), "starting_adapter": recipe.adapter}
    output = save_adapter_output(
        policy, loaded, method=algorithm.name, name=recipe.name, run=run, fingerprint=fingerprint, extra=extra
    )

    after: dict[str, float] = {}
    if held_out:
        tuned = replace(loaded, name=f"{loaded.name}+{recipe.name}", model=policy)
        after, after_texts = score_answers(tuned, held_out, held_prompts, recipe, rewards, chat=chat)
        after["kl"] = kl_from_reference(
            policy, loaded, held_prompts, training, chat=chat, batch_size=recipe.evaluation.batch_size
        )
        _write_answers(run, held_out, before_texts, after_texts)
    counts = {"train_prompts": len(train_rows), "held_out_prompts": len(held_out)}
    metrics = run_figures(trained, policy, counts, before, after)
    run.log_metrics(metrics)
    session.finish()
    table = _table(algorithm, recipe, before, after, metrics, str(output))
    details = {"before": before, "after": after, "rewards": dict(recipe.rewards)}
    return MethodResult(algorithm.name, run.id, str(output), "adapter", metrics, trained.loss_history, table, details)


def _shared_settings(training: Any, weights: list[float]) -> dict[str, Any]:
    """The trl config keys GRPO and RLOO name alike."""
    return {
        "max_steps": training.steps,
        "per_device_train_batch_size": training.completions_per_step,  # trl counts completions, G per prompt
        "num_generations": training.generations,
        "max_completion_length": training.max_new_tokens,
        "temperature": training.temperature,
        "learning_rate": training.learning_rate,
        "beta": training.beta,
        "epsilon": training.epsilon,
        "num_iterations": training.iterations,
        "max_grad_norm": training.max_grad_norm,
        "reward_weights": weights,
        "bf16": False,  # genlab trains in the model's own dtype on CPU
        "fp16": False,
        "gradient_checkpointing": False,  # trl turns it on; small models on CPU do not need it
    }


def _table(
    algorithm: TrlAlgorithm, recipe: Any, before: dict[str, float], after: dict[str, float], metrics: dict[str, float],
    output: str,
) -> TerminalTable:
    rows: list[list[Any]] = []
    for key, label, fmt in ROWS:
        if key in before and key in after:
            rows.append([label, fmt.format(before[key]), fmt.format(after[key]), fmt.format(after[key] - before[key])])
    for key, label in (("first_loss", "training loss, first step"), ("last_loss", "training loss, last step")):
        if key in metrics:
            rows.append([label, "", f"{metrics[key]:.4f}", ""])
    rows.append(["steps / train seconds", "", f"{metrics['steps']:.0f} / {metrics['train_seconds']:.1f}", ""])
    rows.append(["saved to", "", output, ""])
    rewards = ", ".join(f"{spec} x{weight:g}" for spec, weight in recipe.rewards.items())
    title = f"{algorithm.title} ({rewards}) on {int(metrics['held_out_prompts'])} held-out prompts"
    return TerminalTable(title, ["metric", "before", "after", "change"], rows)


def _write_answers(run: Any, rows: list[Any], before: list[str], after: list[str]) -> None:
    lines = [
        json.dumps({"id": row.id, "input": row.input, "reference": row.target, "before": b, "after": a}) + "\n"
        for row, b, a in zip(rows, before, after, strict=True)
    ]
    path = atomic_write_text(run.dir / "answers.jsonl", "".join(lines))
    run.log_artifact(path, "predictions", {"n": len(rows), "columns": "before/after"})
