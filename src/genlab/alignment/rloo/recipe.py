"""RLOO's recipe: GRPO's (prompts, rewards, LoRA, held-out check) with RLOO's training section."""

from __future__ import annotations

from pydantic import Field

from genlab.alignment.grpo.recipe import GroupSamplingConfig, SampledRewardRecipe


class RlooTrainingConfig(GroupSamplingConfig):
    normalize_advantages: bool = False  # scale the batch's advantages to mean 0, std 1 (trl's default: off)


class RlooRecipe(SampledRewardRecipe):
    training: RlooTrainingConfig = Field(default_factory=RlooTrainingConfig)
