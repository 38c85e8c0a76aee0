"""Direct preference optimisation (Rafailov et al. 2023, arXiv:2305.18290) through trl's DPOTrainer.

DPO fits the policy π_θ to preference pairs (x, y_w ≻ y_l) without a reward model or sampling, by
minimising (the ``sigmoid`` loss)

    L(θ) = −E[ log σ( β·log(π_θ(y_w|x)/π_ref(y_w|x)) − β·log(π_θ(y_l|x)/π_ref(y_l|x)) ) ]

where π_ref is the frozen starting model and β (default 0.1) sets how far π_θ may move from it.
trl computes the loss; genlab adds the recipe, the data checks, a held-out before/after measurement
(:mod:`genlab.alignment.dpo_data`), the adapter with its base's fingerprint and the lineage record.

With ``lora.enabled`` (the default) trl wraps the model in a fresh LoRA adapter and the reference is
the same model with the adapter switched off (no second copy in memory); with LoRA off every weight
trains and the reference is a frozen copy. A recipe's ``adapter`` (a LoRA adapter from ``genlab
finetune``, say) is merged into the base first, so DPO starts from the fine-tuned model and the new
adapter applies on top of that merge.

``run_dpo(recipe, store=...)`` is ``genlab align dpo``; ``train_dpo(loaded, pairs, recipe, run=...)``
trains on pairs already in memory (the Constitutional AI pipeline's AI-labelled pairs). ``train_dpo``
wraps ``loaded.model`` in place: use the returned adapter, not ``loaded``, afterwards. Training goes
through :class:`genlab.training.session.TrainerSession`: checkpoints every ``training.save_every``
steps in ``$GENLAB_HOME/dpo/<name>/checkpoints``, Ctrl-C writes one, and ``resume`` continues from
the newest complete one to the weights an uninterrupted run ends with.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from genlab.alignment.dpo.recipe import DpoRecipe, dpo_checkpoints
from genlab.alignment.dpo_data import PreferencePair
from genlab.lineage import LineageStore, record_run
from genlab.models.load import LoadedModel
from genlab.training.saving import save_trained
from genlab.training.session import TrainerSession


@dataclass
class DpoResult:
    run_id: str
    output_path: str  # the adapter folder (LoRA) or model folder (full weights)
    before: dict[str, float]  # held-out preference metrics of the starting model
    after: dict[str, float]  # ... of the trained policy, against the same reference
    train_pairs: int
    held_out_pairs: int
    dropped_pairs: int
    metrics: dict[str, float] = field(default_factory=dict)  # steps, losses, seconds, parameter counts
    loss_history: list[dict[str, float]] = field(default_factory=list)
    output_kind: str = "adapter"  # "model" when LoRA is off

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> tuple[str, list[str], list[list[Any]]]:
        rows: list[list[Any]] = []
        labels = {
            "reward_accuracy": "preference accuracy (implicit reward)",
            "reward_margin": "mean reward margin β·Δ",
            "loglik_accuracy": "model prefers chosen (log-likelihood)",
            "loglik_margin": "mean log-likelihood margin",
        }
        for key, label in labels.items():
            if key in self.before:
                rows.append([label, f"{self.before[key]:.3f}", f"{self.after[key]:.3f}"])
        counts = f"{self.train_pairs} / {self.held_out_pairs} / {self.dropped_pairs}"
        rows.append(["pairs: train / held out / dropped", "", counts])
        for key, label in (("first_loss", "training loss, first step"), ("last_loss", "training loss, last step")):
            if key in self.metrics:
                rows.append([label, "", f"{self.metrics[key]:.4f}"])
        rows.append(["steps", "", f"{self.metrics.get('steps', 0):.0f}"])
        rows.append(["train seconds", "", f"{self.metrics.get('train_seconds', 0):.1f}"])
        rows.append(["saved to", "", self.output_path])
        return f"DPO on held-out pairs ({self.held_out_pairs})", ["", "before", "after"], rows


def run_dpo(
    recipe: DpoRecipe,
    *,
    store: LineageStore,
    recipe_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
) -> DpoResult:
    """``genlab align dpo``: load the model (and merge ``adapter``), read the pairs, train, record into ``store``."""
    from genlab.alignment.dpo_data import read_pairs
    from genlab.models.load import load_model
    from genlab.tuning.assemble import resolve_data_path

    pairs_path = resolve_data_path(recipe.data.path, recipe_dir)
    pairs = read_pairs(pairs_path, limit=recipe.data.limit)
    session = dpo_session(recipe, resume=resume, progress=progress, callbacks=callbacks)
    config = {"recipe": recipe.model_dump(), "resume_from": str(session.start_from) if session.start_from else None}
    with record_run("dpo", config, store=store) as run:
        loaded = load_model(recipe.model)
        if loaded.path is not None:
            run.use(loaded.path, "model", {"model": loaded.name})
        if recipe.adapter is not None:
            from genlab.models.adapters import merge_adapter, resolve_adapter

            folder = resolve_adapter(recipe.adapter)
            loaded = merge_adapter(loaded, folder)
            run.use(folder, "adapter", {"role": "merged before DPO"})
        run.use(pairs_path, "dataset", {"role": "pairs", "rows": len(pairs)})
        return train_dpo(loaded, pairs, recipe, run=run, session=session)


def dpo_session(recipe: DpoRecipe, *, resume: bool = False, progress: bool = True, callbacks: Sequence[Any] = ()) -> TrainerSession:
    """The Trainer session of a DPO recipe: checkpoints in ``$GENLAB_HOME/dpo/<name>/checkpoints``."""
    checkpoints = dpo_checkpoints(recipe)
    return TrainerSession(
        checkpoints, name=recipe.name, resume=resume, progress=progress, callbacks=callbacks, metric_names=DPO_METRICS
    )


def train_dpo(loaded: LoadedModel, pairs: list[PreferencePair], recipe: DpoRecipe, *, run: Any, session: TrainerSession) -> DpoResult:
    """Train ``loaded`` on ``pairs`` with DPO; measure held-out pairs before and after; save and record into ``run``.

    ``loaded.model`` is wrapped in place by the LoRA adapter (or trained in place without LoRA).
    """
    session.record_into(run)
    return _train_dpo(loaded, pairs, recipe, run, session)


def _train_dpo(
    loaded: LoadedModel, pairs: list[PreferencePair], recipe: DpoRecipe, run: Any, session: TrainerSession
) -> DpoResult:
    from transformers import set_seed

    from genlab.alignment.dpo_data import (
        fit_and_split,
        pair_logprobs,
        preference_metrics,
        write_pairs,
    )
    from genlab.models.adapters import base_fingerprint
    from genlab.training.parameters import count_parameters

    chat, dropped, train, held_out = fit_and_split(loaded, pairs, recipe.data, method="DPO")
    if held_out:
        held_out_file = write_pairs(run.dir / "held-out-pairs.jsonl", held_out)
        run.log_artifact(held_out_file, "dataset", {"role": "validation", "rows": len(held_out)})

    fingerprint = base_fingerprint(loaded)  # before LoRA wraps (or training changes) any weight
    loaded.model.eval()
    reference = pair_logprobs(loaded, held_out, chat=chat) if held_out else None
    before = preference_metrics(reference, reference, recipe.beta) if reference else {}

    set_seed(recipe.training.seed)  # LoRA's initialisation is seeded too
    trained = _fit(loaded, train, recipe, chat, session)
    trainer, seconds = trained.trainer, trained.seconds
    model = trainer.model
    model.eval()
    after = {}
    if reference is not None:
        policy = pair_logprobs(replace(loaded, model=model), held_out, chat=chat)
        after = preference_metrics(policy, reference, recipe.beta)

    trainable, total = count_parameters(model)
    history = [entry for entry in trained.loss_history if "loss" in entry]
    losses = [entry["loss"] for entry in history]
    metrics = {
        "steps": float(trained.steps),
        "train_seconds": seconds,
        "seconds_per_step": trained.seconds_per_step,
        "trainable_params": float(trainable),
        "total_params": float(total),
        "train_pairs": float(len(train)),
        "held_out_pairs": float(len(held_out)),
        "dropped_pairs": float(len(dropped)),
        **({"first_loss": losses[0], "last_loss": losses[-1]} if losses else {}),
    }
    extra = {
        "recipe": recipe.name, "beta": recipe.beta, "loss_type": recipe.loss_type,
        "trainable_params": trainable, "total_params": total,
    }  # fmt: skip
    output = save_trained(
        model, loaded, name=recipe.name, adapter=recipe.lora.enabled, method="dpo", run_id=run.id,
        fingerprint=fingerprint, extra=extra,
    )  # fmt: skip
    run.log_artifact(output, "adapter" if recipe.lora.enabled else "model", {"method": "dpo", "base": loaded.name})
    run.log_metrics(metrics)
    run.log_metrics({**{f"before_{k}": v for k, v in before.items()}, **{f"after_{k}": v for k, v in after.items()}})
    session.finish()
    kind = "adapter" if recipe.lora.enabled else "model"
    return DpoResult(run.id, str(output), before, after, len(train), len(held_out), len(dropped), metrics, history, kind)


def _fit(loaded: LoadedModel, train: list[PreferencePair], recipe: DpoRecipe, chat: bool, session: TrainerSession) -> Any:
    """Build trl's DPOTrainer around the model and train it through the session."""
    import datasets
    from huggingface_hub import constants as hub_constants
    from trl import DPOTrainer

    from genlab.alignment.dpo_data import trl_rows
    from genlab.tuning.lora.adapter import peft_config

    datasets.disable_progress_bars()  # trl's tokenising passes over a few dozen rows need no bars
    hub_constants.HF_HUB_DISABLE_TELEMETRY = True  # trl pings the hub as a trainer starts; local training sends nothing
    peft = peft_config(loaded, recipe.lora) if recipe.lora.enabled else None
    reference = None
    if peft is None:  # a frozen copy: trl would otherwise reload the reference from the model's hub id or folder
        reference = copy.deepcopy(loaded.model).eval()
        reference.requires_grad_(False)
    trainer = DPOTrainer(
        model=loaded.model,
        ref_model=reference,
        args=_dpo_config(recipe, session),
        train_dataset=datasets.Dataset.from_list(trl_rows(train, chat=chat)),
        processing_class=loaded.tokenizer,
        peft_config=peft,
        callbacks=session.callbacks,
    )
    return session.train(trainer)


def _dpo_config(recipe: DpoRecipe, session: TrainerSession) -> Any:
    from trl import DPOConfig

    training = recipe.training
    return DPOConfig(
        **session.arguments_for(training),
        beta=recipe.beta,
        loss_type=[recipe.loss_type],
        max_length=recipe.data.max_length,  # pairs longer than this were dropped already; a safety net only
        bf16=False,  # trl turns bf16 on by default; genlab trains in the model's own dtype on CPU
        fp16=False,
        activation_checkpointing=False,  # trl turns it on by default; small models on CPU do not need it
        eval_strategy="no",  # held-out pairs are measured before and after by genlab
    )


# trl's logged names -> the run's metric names (per step)
DPO_METRICS = {
    "loss": "train_loss",
    "rewards/accuracies": "train_reward_accuracy",
    "rewards/margins": "train_reward_margin",
    "learning_rate": "learning_rate",
}
