"""Recipes of the preference methods trained through trl on genlab's preference data (KTO, ORPO).

The data is a pairs file (``{"prompt", "chosen", "rejected"}`` per line, :mod:`genlab.alignment.dpo_data`)
or a rankings file from human feedback (``{"prompt", "completions", "ranks"}``,
:mod:`genlab.alignment.feedback`), which becomes pairs as InstructGPT's K(K−1)/2 comparisons.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from genlab.tracking.config import TrackingConfig
from genlab.tuning.recipe import LoraConfig, Section


class PreferenceDataConfig(Section):
    path: str  # a JSONL file (relative: to the current folder, then the recipe's folder)
    format: Literal["pairs", "rankings"] = "pairs"  # pairs: prompt/chosen/rejected; rankings: prompt/completions/ranks
    limit: int | None = Field(default=None, ge=1)  # read only the first N rows
    validation_size: float = Field(default=0.2, ge=0)  # a fraction (< 1) or a count of pairs held out; 0: none
    split_seed: int = 0
    max_length: int = Field(default=512, ge=8)  # tokens of prompt + answer; longer pairs are dropped, never cut
    chat: bool = True  # prompts in the tokenizer's chat template, as genlab's generation reads them


class PreferenceTrainingConfig(Section):
    epochs: float = Field(default=1.0, gt=0)
    max_steps: int = Field(default=-1, ge=-1)  # > 0 overrides epochs
    batch_size: int = Field(default=4, ge=2)  # rows per step; KTO's KL baseline pairs rows within a batch
    gradient_accumulation: int = Field(default=1, ge=1)
    learning_rate: float = Field(default=2e-4, gt=0, lt=1)  # LoRA on a small model
    warmup: float = Field(default=0.0, ge=0)  # steps (>= 1) or a fraction of all steps
    save_every: int = Field(default=50, ge=1)  # a checkpoint every N steps, for --resume
    log_every: int = Field(default=1, ge=1)
    seed: int = 42


class PreferenceRecipe(Section):
    """Fields every preference method's recipe has."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # the adapter's folder name
    model: str = "smollm2-135m-instruct"
    adapter: str | None = None  # a LoRA adapter (name or folder) merged into the base first
    data: PreferenceDataConfig
    lora: LoraConfig = Field(default_factory=LoraConfig)
    beta: float = Field(default=0.1, gt=0)  # the method's β (KTO) or λ (ORPO): see its module docstring
    training: PreferenceTrainingConfig = Field(default_factory=PreferenceTrainingConfig)
    tracking: TrackingConfig | None = Field(default=None, exclude=True)  # also log to MLflow (genlab.tracking); not in model_dump
    description: str = ""


class KtoRecipe(PreferenceRecipe):
    desirable_weight: float = Field(default=1.0, gt=0)  # λ_D: the KTO paper keeps λ_D·n_D / (λ_U·n_U) in [1, 4/3]
    undesirable_weight: float = Field(default=1.0, gt=0)  # λ_U
