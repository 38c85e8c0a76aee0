"""Reward models trained on preference pairs with the Bradley–Terry loss.

A reward model is the base LM with a scalar head (``AutoModelForSequenceClassification``,
``num_labels=1``) that reads the hidden state of the last token of prompt + response. For a pair
where ``y_w`` was preferred over ``y_l`` for prompt ``x`` (Bradley & Terry, 1952; the RLHF reward
model of Stiennon et al., 2020, https://arxiv.org/abs/2009.01325, and Ouyang et al., 2022, eq. 1)::

    P(y_w > y_l | x) = σ(r_θ(x, y_w) − r_θ(x, y_l))
    loss             = −log σ(r_θ(x, y_w) − r_θ(x, y_l))      (mean over pairs)

Training runs through **trl's RewardTrainer** (trl 1.16; it works here on CPU with a model built
in memory and a peft config, so no hand-written loop is needed), which implements exactly this
loss, on pairs that genlab tokenizes itself (:func:`genlab.alignment.reward.reward_input_ids`), so training and
scoring (:class:`~genlab.alignment.reward.TrainedRewardModel`) read identical token sequences. With
LoRA (the default: r 16 on every linear layer) the head is trained in full (peft's
``modules_to_save``) and merged into the saved model; ``lora.last_layers`` adapts only the top
layers, which spares the backward pass below them.

Reported on held-out pairs (whole prompts held out, see :mod:`genlab.alignment.reward_data`),
before training (the base with its freshly initialised, seeded head) and after::

    accuracy = #{pairs : r(x, y_w) > r(x, y_l)} / #pairs
    margin   = mean over pairs of r(x, y_w) − r(x, y_l)

Training goes through :class:`genlab.training.session.TrainerSession`: checkpoints every
``training.save_every`` steps in ``$GENLAB_HOME/reward/<name>/checkpoints``, Ctrl-C writes one, and
``resume`` continues from the newest complete one.

The model goes to ``$GENLAB_HOME/reward_models/<name>`` (``-2``, ``-3``, ... if the name is taken:
no earlier model is overwritten), written atomically with ``genlab_reward.json`` (base, its
fingerprint, formatting, accuracy), and the run is recorded in lineage as kind ``reward``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from genlab.alignment.reward import (
    REWARD_RECORD,
    reward_models_dir,
    score_token_ids,
)
from genlab.alignment.reward_data import (
    TokenizedPairs,
    tokenize_pairs,
)
from genlab.alignment.reward_model.recipe import RewardLoraConfig, RewardRecipe, reward_checkpoints
from genlab.errors import InvalidValueError, ModelLoadError
from genlab.lineage import LineageStore, record_run
from genlab.training.session import TrainedRun, TrainerSession


@dataclass
class RewardResult:
    run_id: str
    name: str
    model_path: str
    metrics: dict[str, float]
    per_kind: dict[str, dict[str, float]] = field(default_factory=dict)  # kind -> accuracy_before/after
    train_pairs: int = 0
    validation_pairs: int = 0
    dropped_pairs: int = 0
    loss_history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> tuple[str, list[str], list[list[str]]]:
        m = self.metrics
        rows = [
            ["pairwise accuracy", f"{m['accuracy_before']:.3f}", f"{m['accuracy_after']:.3f}"],
            ["mean margin r(chosen) − r(rejected)", f"{m['margin_before']:+.3f}", f"{m['margin_after']:+.3f}"],
        ]
        rows += [[f"accuracy: {kind}", f"{v['accuracy_before']:.3f}", f"{v['accuracy_after']:.3f}"] for kind, v in self.per_kind.items()]
        title = (
            f"reward model {self.name}: {self.validation_pairs} held-out pairs "
            f"({m.get('steps', 0):.0f} steps on {self.train_pairs} training pairs, {m.get('train_seconds', 0):.0f} s) "
            f"-> {self.model_path}"
        )
        return title, ["metric", "before", "after"], rows


# --- the model ---------------------------------------------------------------------------------------


def build_reward_model(loaded: Any, seed: int) -> Any:
    """The base's transformer under a new scalar head (seeded), as ``AutoModelForSequenceClassification``."""
    import copy

    import torch
    from transformers import AutoModelForSequenceClassification, set_seed

    if loaded.is_encoder_decoder:
        raise InvalidValueError(
            f"model={loaded.name!r} is not allowed: reward models here put a head on a decoder-only LM, and it is encoder-decoder."
        )
    config = copy.deepcopy(loaded.model.config)
    config.num_labels, config.id2label, config.label2id = 1, {0: "reward"}, {"reward": 0}
    config.pad_token_id = loaded.tokenizer.pad_token_id  # the head reads the last non-padding token
    config.architectures = None
    set_seed(seed)
    try:
        model = AutoModelForSequenceClassification.from_config(config, dtype=torch.float32)
        model.base_model.load_state_dict(loaded.model.base_model.state_dict(), strict=True)
    except (ValueError, RuntimeError) as error:
        raise ModelLoadError(f"cannot put a reward head on {loaded.name}: {str(error).splitlines()[0]}") from None
    return model.eval()


def _peft_config(model: Any, settings: RewardLoraConfig) -> Any:
    from peft import LoraConfig, TaskType
    from torch.nn import Linear

    from genlab.tuning.lora.adapter import target_modules_for

    targets, layers = target_modules_for(model, settings.target_modules), None
    if settings.last_layers is not None:
        total = int(model.config.num_hidden_layers)
        if settings.last_layers > total:
            raise InvalidValueError(f"lora.last_layers={settings.last_layers} is not allowed: the model has {total} layers.")
        layers = list(range(total - settings.last_layers, total))
        if targets == "all-linear":  # peft takes a layer range only with module names: the backbone's linear ones
            targets = sorted({n.rsplit(".", 1)[-1] for n, m in model.base_model.named_modules() if isinstance(m, Linear)})
    head = [name for name in ("score", "classifier") if hasattr(model, name)]
    return LoraConfig(
        r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
        target_modules=targets, layers_to_transform=layers,
        modules_to_save=head, task_type=TaskType.SEQ_CLS,
    )  # fmt: skip


# --- data --------------------------------------------------------------------------------------------


def pairwise_metrics(model: Any, data: TokenizedPairs, pad_token_id: int, batch_size: int) -> dict[str, Any]:
    """Accuracy and mean margin over ``data`` (each distinct sequence scored once), overall and per ``kind``."""
    unique: dict[tuple[int, ...], int] = {}
    for row in data.rows:
        for key in ("chosen_ids", "rejected_ids"):
            unique.setdefault(tuple(row[key]), len(unique))
    scores = score_token_ids(model, list(unique), pad_token_id, batch_size=batch_size)
    margins = [scores[unique[tuple(r["chosen_ids"])]] - scores[unique[tuple(r["rejected_ids"])]] for r in data.rows]
    by_kind: dict[str, list[float]] = {}
    for pair, margin in zip(data.pairs, margins):
        if pair.kind is not None:
            by_kind.setdefault(pair.kind, []).append(margin)
    return {
        "accuracy": sum(m > 0 for m in margins) / len(margins),
        "margin": sum(margins) / len(margins),
        "per_kind": {kind: sum(m > 0 for m in ms) / len(ms) for kind, ms in sorted(by_kind.items())},
    }


# --- the run -----------------------------------------------------------------------------------------


def train_reward_model(
    recipe: RewardRecipe,
    *,
    store: LineageStore,
    recipe_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
) -> RewardResult:
    """Train ``recipe``'s reward model, report held-out accuracy before/after, save it and record the run in ``store``."""
    checkpoints = reward_checkpoints(recipe)
    session = TrainerSession(
        checkpoints, name=recipe.name, resume=resume, progress=progress, callbacks=callbacks, metric_names=REWARD_METRICS
    )
    config = {"recipe": recipe.model_dump(), "resume_from": str(session.start_from) if session.start_from else None}
    with record_run("reward", config, store=store) as run:
        session.record_into(run)
        return _train_reward_model(recipe, recipe_dir, run, session)


# trl's logged names -> the run's metric names (per step)
REWARD_METRICS = {"loss": "train_loss", "accuracy": "train_accuracy", "margin": "train_margin", "learning_rate": "learning_rate"}


def _train_reward_model(recipe: RewardRecipe, recipe_dir: Path | None, run: Any, session: TrainerSession) -> RewardResult:
    from genlab.alignment.reward_data import (
        load_preference_pairs,
        resolve_data_path,
        split_by_prompt,
        write_pairs,
    )
    from genlab.models.fingerprint import base_fingerprint
    from genlab.models.load import load_model
    from genlab.training.parameters import count_parameters

    source = resolve_data_path(recipe.data.path, recipe_dir)
    pairs = load_preference_pairs(source, limit=recipe.data.limit)
    train_pairs, validation_pairs = split_by_prompt(pairs, recipe.data.validation_size, recipe.data.split_seed)
    if Path(source).is_file():
        run.use(source, "dataset", {"role": "preferences", "pairs": len(pairs)})
    else:  # built in memory: the exact pairs are kept with the run and hashed
        run.use(write_pairs(pairs, run.dir / "preferences.jsonl"), "dataset", {"role": "preferences", "source": source})

    loaded = load_model(recipe.model)
    if loaded.path is not None:
        run.use(loaded.path, "model", {"model": loaded.name, "role": "base"})
    tokenizer = loaded.tokenizer
    if recipe.data.formatting == "chat" and not getattr(tokenizer, "chat_template", None):
        raise InvalidValueError(
            f"data.formatting='chat' is not allowed: {recipe.model} has no chat template; use data.formatting=plain."
        )
    train = tokenize_pairs(train_pairs, tokenizer, recipe.data.formatting, recipe.data.max_length)
    validation = tokenize_pairs(validation_pairs, tokenizer, recipe.data.formatting, recipe.data.max_length)
    if not train.rows or not validation.rows:
        raise InvalidValueError(
            f"data.max_length={recipe.data.max_length} is not allowed: it drops every "
            f"{'training' if not train.rows else 'held-out'} pair; raise it."
        )
    validation_file = write_pairs(validation.pairs, run.dir / "validation_pairs.jsonl")
    run.log_artifact(validation_file, "dataset", {"role": "validation", "pairs": len(validation.pairs)})

    fingerprint = base_fingerprint(loaded)  # before any weight changes
    model = build_reward_model(loaded, recipe.training.seed)
    loaded = replace(loaded, model=model)  # the causal LM's head is no longer needed; let it go
    pad_id = int(model.config.pad_token_id if model.config.pad_token_id is not None else 0)
    before = pairwise_metrics(model, validation, pad_id, recipe.training.eval_batch_size)

    run_result = _train(recipe, model, tokenizer, train, session)
    trainer, seconds = run_result.trainer, run_result.seconds
    trainable, total = count_parameters(trainer.model)  # before merging, which leaves nothing trainable
    trained = trainer.model.merge_and_unload() if recipe.lora.enabled else trainer.model
    trained.eval()
    after = pairwise_metrics(trained, validation, pad_id, recipe.training.eval_batch_size)

    steps = run_result.steps
    history = [entry for entry in run_result.loss_history if "loss" in entry]
    metrics = {
        "accuracy_before": before["accuracy"], "accuracy_after": after["accuracy"],
        "margin_before": before["margin"], "margin_after": after["margin"],
        "train_seconds": seconds, "steps": float(steps), "seconds_per_step": run_result.seconds_per_step,
        "trainable_params": float(trainable), "total_params": float(total),
        "train_pairs": float(len(train.rows)), "validation_pairs": float(len(validation.rows)),
        "dropped_pairs": float(train.dropped + validation.dropped),
    }  # fmt: skip
    if history:
        metrics["train_loss"] = history[-1]["loss"]
    per_kind = {
        kind: {"accuracy_before": before["per_kind"][kind], "accuracy_after": after["per_kind"][kind]}
        for kind in after["per_kind"]
    }
    record = {
        "base_model": loaded.name, "base_path": str(loaded.path) if loaded.path else None, "base_fingerprint": fingerprint,
        "formatting": {"style": recipe.data.formatting, "max_length": recipe.data.max_length},
        "head": "AutoModelForSequenceClassification, num_labels=1, last non-padding token",
        "loss": "bradley-terry", "trainer": "trl.RewardTrainer", "lora": recipe.lora.model_dump() if recipe.lora.enabled else None,
        "data": source, "run_id": run.id, "recipe": recipe.name,
        **{k: metrics[k] for k in ("accuracy_before", "accuracy_after", "margin_before", "margin_after", "validation_pairs")},
        "accuracy_per_kind": per_kind,
    }  # fmt: skip
    folder = _save(trained, tokenizer, recipe.name, record)
    run.log_artifact(folder, "reward_model", {"base": loaded.name, "accuracy_after": after["accuracy"]})
    run.log_metrics(metrics)
    run.log_metrics({f"{key}_{kind}": value for kind, values in per_kind.items() for key, value in values.items()})
    session.finish()
    return RewardResult(
        run.id, folder.name, str(folder), metrics, per_kind, len(train.rows), len(validation.rows),
        train.dropped + validation.dropped, history,
    )  # fmt: skip


def _train(recipe: RewardRecipe, model: Any, tokenizer: Any, train: TokenizedPairs, session: TrainerSession) -> TrainedRun:
    from datasets import Dataset
    from trl import RewardConfig

    t = recipe.training
    args = RewardConfig(
        **session.arguments_for(t), lr_scheduler_type=t.schedule,
        weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm, center_rewards_coefficient=t.center_rewards,
        eval_strategy="no", bf16=False, fp16=False, activation_checkpointing=False,
        max_length=None,  # pairs were filtered by data.max_length when tokenized
    )  # fmt: skip
    trainer = _offline_reward_trainer()(
        model=model, args=args, train_dataset=Dataset.from_list(train.rows), processing_class=tokenizer,
        peft_config=_peft_config(model, recipe.lora) if recipe.lora.enabled else None, callbacks=session.callbacks,
    )  # fmt: skip
    return session.train(trainer)


def _offline_reward_trainer() -> type:
    """trl imported on first use, so importing this module (the recipe schema) stays light."""
    from trl import RewardTrainer

    class OfflineRewardTrainer(RewardTrainer):
        """trl's RewardTrainer without its usage ping: genlab runs offline and reports nothing home."""

        def _send_telemetry(self) -> None:
            return None

    return OfflineRewardTrainer


def _save(model: Any, tokenizer: Any, name: str, record: dict[str, Any]) -> Path:
    from genlab.atomic import atomic_directory
    from genlab.training.saving import free_folder

    folder = free_folder(reward_models_dir(), name)
    with atomic_directory(folder) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / REWARD_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return folder
