"""One run of a preference method through a trl trainer on genlab's preference data (KTO and ORPO share it).

1. read the pairs (or rankings → pairs); load the starting policy (a LoRA adapter merged in when named);
2. drop pairs longer than ``data.max_length`` (whole, never cut) and hold some out (seeded);
3. score the held-out pairs under the starting model: log π_ref(y_w|x), log π_ref(y_l|x);
4. train a fresh LoRA adapter with trl's trainer inside genlab's :class:`TrainerSession`
   (lineage losses, progress, Ctrl-C checkpoint, ``--resume``);
5. score the held-out pairs again and report, as DPO does (:func:`genlab.alignment.dpo_data.preference_metrics`),
   whether the policy now gives the chosen answer the higher likelihood and the implicit reward
   β·log(π/π_ref) margin; save the adapter with its base's fingerprint; return the :class:`MethodResult`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import datasets
from transformers import set_seed

from genlab.alignment.dpo_data import (
    fit_and_split,
    pair_logprobs,
    preference_metrics,
    write_pairs,
)
from genlab.alignment.kto.data import read_preference_pairs
from genlab.alignment.kto.recipe import PreferenceRecipe
from genlab.alignment.prompt_rows import load_starting_model
from genlab.alignment.trl_outputs import run_figures, save_adapter_output, trl_session
from genlab.lineage import record_run
from genlab.methods import MethodResult, RunOptions, TerminalTable
from genlab.models.adapters import base_fingerprint
from genlab.training.session import LOSS_METRICS
from genlab.tuning.assemble import resolve_data_path
from genlab.tuning.lora.adapter import peft_config

# trl's logged names -> the run's metric names (per step)
PREFERENCE_METRICS = {**LOSS_METRICS, "rewards/chosen": "train_reward_chosen", "rewards/rejected": "train_reward_rejected"}
PREFERENCE_ROWS = (
    ("loglik_accuracy", "model prefers chosen (log-likelihood)"),
    ("loglik_margin", "mean log-likelihood margin"),
    ("reward_accuracy", "implicit-reward accuracy β·log(π/π_ref)"),
    ("reward_margin", "mean implicit-reward margin"),
)


@dataclass(frozen=True)
class PreferenceAlgorithm:
    """What differs between the preference methods: the name, trl's classes, the rows and own settings."""

    name: str
    title: str
    trainer_class: type
    config_class: type
    rows: Callable[[list[Any], bool], list[dict[str, Any]]]  # (train pairs, chat) -> trl's dataset rows
    own_settings: Callable[[Any], Mapping[str, Any]]  # recipe -> the algorithm's own config keys
    metric_names: Mapping[str, str]  # trl's logged names -> the run's metric names


def run_preference_method(recipe: PreferenceRecipe, options: RunOptions, algorithm: PreferenceAlgorithm) -> MethodResult:
    """Steps 1-5 of the module docstring."""
    data_path = resolve_data_path(recipe.data.path, options.recipe_dir)
    pairs = read_preference_pairs(data_path, recipe.data.format, limit=recipe.data.limit)
    config = {"recipe": recipe.model_dump(), "resume": options.resume}
    with record_run(algorithm.name, config, store=options.store) as run:
        loaded = load_starting_model(recipe.model, recipe.adapter, run)
        run.use(data_path, "dataset", {"role": recipe.data.format, "pairs": len(pairs)})
        return _run(recipe, options, algorithm, loaded, pairs, run)


def _run(recipe: Any, options: RunOptions, algorithm: PreferenceAlgorithm, loaded: Any, pairs: list[Any], run: Any) -> MethodResult:
    chat, dropped, train, held_out = fit_and_split(loaded, pairs, recipe.data, method=algorithm.title)
    if held_out:
        run.log_artifact(write_pairs(run.dir / "held-out-pairs.jsonl", held_out), "dataset", {"role": "validation"})
    fingerprint = base_fingerprint(loaded)  # before LoRA wraps any weight
    loaded.model.eval()
    reference = pair_logprobs(loaded, held_out, chat=chat) if held_out else None
    before = preference_metrics(reference, reference, recipe.beta) if reference else {}

    training = recipe.training
    set_seed(training.seed)  # LoRA's initialisation is seeded too
    session = trl_session(algorithm.name, recipe, options, run, algorithm.metric_names)
    datasets.disable_progress_bars()  # trl's tokenising passes over a few dozen rows need no bars
    trainer = algorithm.trainer_class(
        model=loaded.model,
        args=algorithm.config_class(
            **session.arguments_for(training), **_shared_settings(recipe), **algorithm.own_settings(recipe),
        ),
        train_dataset=datasets.Dataset.from_list(algorithm.rows(train, chat)),
        processing_class=loaded.tokenizer,
        peft_config=peft_config(loaded, recipe.lora),
        callbacks=session.callbacks,
    )
    trained = session.train(trainer)
    policy = trained.trainer.model
    policy.eval()
    after = preference_metrics(pair_logprobs(replace(loaded, model=policy), held_out, chat=chat), reference, recipe.beta) if reference else {}
    extra = {"recipe": recipe.name, "beta": recipe.beta, "starting_adapter": recipe.adapter}
    output = save_adapter_output(
        policy, loaded, method=algorithm.name, name=recipe.name, run=run, fingerprint=fingerprint, extra=extra
    )
    counts = {"train_pairs": len(train), "held_out_pairs": len(held_out), "dropped_pairs": len(dropped)}
    metrics = run_figures(trained, policy, counts, before, after)
    run.log_metrics(metrics)
    session.finish()
    details = {"before": before, "after": after, "train_pairs": len(train), "held_out_pairs": len(held_out)}
    table = _table(algorithm, before, after, metrics, str(output))
    return MethodResult(algorithm.name, run.id, str(output), "adapter", metrics, trained.loss_history, table, details)


def _shared_settings(recipe: Any) -> dict[str, Any]:
    """What KTO and ORPO set alike besides the schedule (:meth:`TrainerSession.arguments_for`)."""
    return {
        "beta": recipe.beta,
        "max_length": recipe.data.max_length,  # longer pairs were dropped already; a safety net only
        "bf16": False,  # genlab trains in the model's own dtype on CPU
        "fp16": False,
        "gradient_checkpointing": False,  # trl turns it on; small models on CPU do not need it
    }


def _table(
    algorithm: PreferenceAlgorithm, before: dict[str, float], after: dict[str, float], metrics: dict[str, float], output: str
) -> TerminalTable:
    rows: list[list[Any]] = [
        [label, f"{before[key]:.3f}", f"{after[key]:.3f}"] for key, label in PREFERENCE_ROWS if key in before and key in after
    ]
    counts = f"{metrics['train_pairs']:.0f} / {metrics['held_out_pairs']:.0f} / {metrics['dropped_pairs']:.0f}"
    rows.append(["pairs: train / held out / dropped", "", counts])
    for key, label in (("first_loss", "training loss, first step"), ("last_loss", "training loss, last step")):
        if key in metrics:
            rows.append([label, "", f"{metrics[key]:.4f}"])
    rows.append(["steps / train seconds", "", f"{metrics['steps']:.0f} / {metrics['train_seconds']:.1f}"])
    rows.append(["saved to", "", output])
    title = f"{algorithm.title} on held-out pairs ({metrics['held_out_pairs']:.0f})"
    return TerminalTable(title, ["", "before", "after"], rows)

