"""Recipes of the sampled-reward methods, GRPO and RLOO: prompts, rewards, LoRA, sampling, held-out check.

The prompt data and held-out measurement mirror the PPO lab's recipe (``recipes/detox-ppo.yaml``) so the
three methods can be run on the same dialogues with the same budget. RLOO's recipe
(:mod:`genlab.alignment.rloo`) is this one with its own training section.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from genlab.alignment.rewards import RewardSpecs
from genlab.alignment.rewards.specs import needs_reference
from genlab.tracking.config import TrackingConfig
from genlab.tuning.recipe import LoraConfig, Section


class PromptDataConfig(Section):
    path: str = "builtin:heated"  # heated dialogues with rude language; a data file or hub id works too
    input_field: str = "dialogue"
    target_field: str | None = "summary"  # the reference answer ROUGE rewards and the held-out ROUGE-1 read; None: no references
    template: str = "summarize"
    chat: bool = True  # format prompts with the tokenizer's chat template (when it has one)
    limit: int | None = Field(default=None, ge=1)  # read only the first N rows
    validation_size: float = Field(default=0.25, ge=0)  # a fraction (< 1) or a row count held out; 0: no held-out check
    split_seed: int = 0


class HeldOutConfig(Section):
    limit: int | None = Field(default=None, ge=1)  # held-out rows to score (None: all)
    max_new_tokens: int = Field(default=64, ge=1)  # greedy answers before and after training
    batch_size: int = Field(default=8, ge=1)


class GroupSamplingConfig(Section):
    """What GRPO and RLOO share: G sampled completions per prompt, a KL penalty to the reference, clipping."""

    steps: int = Field(default=10, ge=1)  # optimizer steps (one batch of prompts each)
    prompts_per_step: int = Field(default=2, ge=1)  # distinct prompts per step
    generations: int = Field(default=4, ge=2)  # G: completions sampled per prompt (a group needs two at least)
    max_new_tokens: int = Field(default=40, ge=1)  # completion length cap while sampling
    temperature: float = Field(default=1.0, gt=0, le=10)
    learning_rate: float = Field(default=5e-4, gt=0, lt=1)  # LoRA on a small model; full fine-tuning wants ~1e-6
    beta: float = Field(default=0.05, ge=0)  # KL coefficient to the reference (the model with the adapter off); 0: none
    epsilon: float = Field(default=0.2, gt=0, lt=1)  # clip range of the probability ratio
    iterations: int = Field(default=1, ge=1)  # updates per batch of samples (μ); 1: exactly on-policy
    max_grad_norm: float = Field(default=1.0, gt=0)
    save_every: int = Field(default=50, ge=1)  # a checkpoint every N steps, for --resume
    log_every: int = Field(default=1, ge=1)
    seed: int = 0

    @property
    def completions_per_step(self) -> int:
        return self.prompts_per_step * self.generations


class GrpoTrainingConfig(GroupSamplingConfig):
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = "dapo"  # trl's names; dapo: token-level mean, no length bias
    scale_rewards: Literal["group", "batch", "none"] = "group"  # divide advantages by the group's reward std (GRPO paper)


class SampledRewardRecipe(Section):
    """Fields every sampled-reward method's recipe has; each method adds its ``training`` section."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # the adapter's folder name
    model: str = "smollm2-135m-instruct"
    adapter: str | None = None  # a LoRA adapter (name or folder) merged into the base before training
    data: PromptDataConfig = Field(default_factory=PromptDataConfig)
    rewards: RewardSpecs = Field(default_factory=lambda: {"non-toxicity": 1.0})  # spec -> weight
    lora: LoraConfig = Field(default_factory=LoraConfig)
    evaluation: HeldOutConfig = Field(default_factory=HeldOutConfig)
    tracking: TrackingConfig | None = Field(default=None, exclude=True)  # also log to MLflow (genlab.tracking); not in model_dump
    description: str = ""

    @model_validator(mode="after")
    def _references_for_rouge(self) -> SampledRewardRecipe:
        if self.data.target_field is None and needs_reference(self.rewards):
            raise ValueError("a ROUGE reward compares with a reference: set data.target_field (e.g. summary)")
        return self


class GrpoRecipe(SampledRewardRecipe):
    training: GrpoTrainingConfig = Field(default_factory=GrpoTrainingConfig)
