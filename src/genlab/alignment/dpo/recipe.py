"""The recipe of ``genlab align dpo`` (:class:`DpoRecipe`).

It imports no training library: the registry and the CLI import it at start-up (see :mod:`genlab.methods`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from genlab.tracking.config import TrackingConfig
from genlab.training.checkpoints import checkpoints_dir
from genlab.tuning.recipe import LoraConfig, Section

LossType = Literal["sigmoid", "hinge", "ipo"]  # trl's names; sigmoid is the DPO paper's loss


class PairsDataConfig(Section):
    path: str  # a JSONL file of {"prompt", "chosen", "rejected"} rows (relative: to the recipe's folder)
    limit: int | None = Field(default=None, ge=1)  # read only the first N pairs
    validation_size: float = Field(default=0.2, ge=0)  # a fraction (< 1) or a count of pairs held out; 0: none
    split_seed: int = 0
    max_length: int = Field(default=512, ge=8)  # tokens of prompt + answer; longer pairs are dropped, never cut
    chat: bool = True  # prompts in the tokenizer's chat template, as genlab's evaluation and generation read them


class DpoLoraConfig(LoraConfig):
    enabled: bool = True  # False: every weight trains, against a frozen copy of the model


class DpoTrainingConfig(Section):
    epochs: float = Field(default=3.0, gt=0)
    max_steps: int = Field(default=-1, ge=-1)  # > 0 overrides epochs
    batch_size: int = Field(default=4, ge=1)  # pairs per step (each is two sequences)
    gradient_accumulation: int = Field(default=1, ge=1)
    learning_rate: float = Field(default=5e-5, gt=0, lt=1)  # trl's default, 1e-6, suits full fine-tuning of big models
    warmup: float = Field(default=0.0, ge=0)  # steps (>= 1) or a fraction of all steps
    log_every: int = Field(default=1, ge=1)
    save_every: int = Field(default=50, ge=1)  # steps between checkpoints (Ctrl-C writes one too)
    seed: int = 42


class DpoRecipe(Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # the adapter's folder name
    model: str = "smollm2-135m-instruct"
    adapter: str | None = None  # a LoRA adapter (folder or name) merged into the model before DPO
    data: PairsDataConfig
    lora: DpoLoraConfig = Field(default_factory=DpoLoraConfig)
    beta: float = Field(default=0.1, gt=0)  # DPO's β: higher keeps the policy closer to the reference
    loss_type: LossType = "sigmoid"
    training: DpoTrainingConfig = Field(default_factory=DpoTrainingConfig)
    tracking: TrackingConfig | None = Field(default=None, exclude=True)  # also log to MLflow (genlab.tracking); not in model_dump
    description: str = ""


def dpo_checkpoints(recipe: DpoRecipe) -> Path:
    """``$GENLAB_HOME/dpo/<name>/checkpoints``: kept until the run completes, for ``--resume``."""
    return checkpoints_dir("dpo", recipe.name)
