"""The recipe's training section as transformers ``TrainingArguments``.

Checkpoints keep the optimizer, scheduler and RNG states (not ``save_only_model``), which is what
lets a resumed run end with the same weights as an uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genlab.tuning.recipe import FinetuneRecipe


def training_arguments(recipe: FinetuneRecipe, checkpoints: Path, *, has_validation: bool) -> Any:
    import torch
    from transformers import TrainingArguments

    training = recipe.training
    evaluate = has_validation
    early_stopping = training.early_stopping_patience is not None and evaluate
    return TrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=training.epochs,
        max_steps=training.max_steps,
        per_device_train_batch_size=training.batch_size,
        per_device_eval_batch_size=training.batch_size,
        gradient_accumulation_steps=training.gradient_accumulation,
        learning_rate=training.learning_rate,
        lr_scheduler_type=training.schedule,
        warmup_steps=training.warmup,
        weight_decay=training.weight_decay,
        max_grad_norm=training.max_grad_norm,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=training.eval_every,
        save_strategy="steps",
        save_steps=training.save_every,
        save_total_limit=training.keep_checkpoints,
        load_best_model_at_end=early_stopping,
        metric_for_best_model="eval_loss" if early_stopping else None,
        greater_is_better=False if early_stopping else None,
        logging_steps=training.log_every,
        logging_first_step=True,
        seed=training.seed,
        data_seed=training.seed,
        train_sampling_strategy="group_by_length" if training.group_by_length else "random",
        activation_checkpointing=training.gradient_checkpointing,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # every trainable parameter is used each step; skips a graph walk
        remove_unused_columns=False,
        report_to="none",
        disable_tqdm=True,  # genlab's own bar shows the loss (callbacks.LossProgressBar)
        label_names=["labels"],
    )
