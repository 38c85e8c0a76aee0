"""The recipe of ``genlab align reward`` (:class:`RewardRecipe`).

It imports no training library: the registry and the CLI import it at start-up (see :mod:`genlab.methods`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from genlab.alignment.reward import Formatting
from genlab.alignment.reward_data import BUILTIN_SUMMARY_PREFERENCES
from genlab.tracking.config import TrackingConfig
from genlab.training.checkpoints import checkpoints_dir
from genlab.tuning.recipe import Section


class RewardDataConfig(Section):
    path: str = BUILTIN_SUMMARY_PREFERENCES  # pairs JSONL, rankings JSONL, or builtin:summary-preferences
    limit: int | None = Field(default=None, ge=2)  # read only the first N pairs
    validation_size: float = Field(default=0.2, gt=0)  # prompts held out (with all their pairs): a fraction (< 1) or a count
    split_seed: int = 0
    max_length: int = Field(default=512, ge=8)  # tokens of prompt + response; longer pairs are dropped, never cut
    formatting: Formatting = "chat"  # chat: the tokenizer's chat template, as the policy sees it; plain: prompt, newline, response


class RewardLoraConfig(Section):
    enabled: bool = True  # False: every weight is trained
    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.0, ge=0, lt=1)  # trl switches dropout off for reward models anyway
    target_modules: list[str] | Literal["attention", "all-linear"] = "all-linear"
    last_layers: int | None = Field(default=None, ge=1)  # adapt only the last N layers (no backward pass below them)


class RewardTrainingConfig(Section):
    epochs: float = Field(default=1.0, gt=0)
    max_steps: int = Field(default=-1, ge=-1)  # > 0 overrides epochs
    batch_size: int = Field(default=4, ge=1)  # pairs per step: twice as many sequences
    gradient_accumulation: int = Field(default=1, ge=1)
    learning_rate: float = Field(default=1e-4, gt=0, lt=1)
    schedule: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup: float = Field(default=0.0, ge=0)  # steps (>= 1) or a fraction of all steps (< 1)
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    center_rewards: float | None = Field(default=None, ge=0)  # trl's center_rewards_coefficient (0.01 suggested)
    eval_batch_size: int = Field(default=8, ge=1)  # sequences per forward pass when scoring held-out pairs
    seed: int = 42  # the head's initialisation, LoRA's and the data order
    log_every: int = Field(default=5, ge=1)
    save_every: int = Field(default=50, ge=1)  # steps between checkpoints (Ctrl-C writes one too)


class RewardRecipe(Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    model: str = "smollm2-135m-instruct"  # the base the scalar head is put on (a pack, folder or hub id)
    data: RewardDataConfig = Field(default_factory=RewardDataConfig)
    lora: RewardLoraConfig = Field(default_factory=RewardLoraConfig)
    training: RewardTrainingConfig = Field(default_factory=RewardTrainingConfig)
    tracking: TrackingConfig | None = Field(default=None, exclude=True)  # also log to MLflow (genlab.tracking); not in model_dump
    description: str = ""


def reward_checkpoints(recipe: RewardRecipe) -> Path:
    """``$GENLAB_HOME/reward/<name>/checkpoints``: kept until the run completes, for ``--resume``."""
    return checkpoints_dir("reward", recipe.name)
