"""The recipe's training section as transformers ``TrainingArguments``.

Checkpoints keep the optimizer, scheduler and RNG states (not ``save_only_model``), which is what
lets a resumed run end with the same weights as an uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genlab.training.session import trainer_arguments
from genlab.tuning.recipe import FinetuneRecipe


def training_arguments(recipe: FinetuneRecipe, checkpoints: Path, *, has_validation: bool) -> Any:
    """The shared arguments (:func:`genlab.training.session.trainer_arguments`) and fine-tuning's own."""
    from transformers import TrainingArguments

    training = recipe.training
    evaluate = has_validation
    early_stopping = training.early_stopping_patience is not None and evaluate
    return TrainingArguments(
        **trainer_arguments(checkpoints, training),
        per_device_eval_batch_size=training.batch_size,
        lr_scheduler_type=training.schedule,
        weight_decay=training.weight_decay,
        max_grad_norm=training.max_grad_norm,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=training.eval_every,
        load_best_model_at_end=early_stopping,
        metric_for_best_model="eval_loss" if early_stopping else None,
        greater_is_better=False if early_stopping else None,
        train_sampling_strategy="group_by_length" if training.group_by_length else "random",
        activation_checkpointing=training.gradient_checkpointing,
        ddp_find_unused_parameters=False,  # every trainable parameter is used each step; skips a graph walk
        remove_unused_columns=False,
        label_names=["labels"],
    )
