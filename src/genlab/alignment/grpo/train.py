"""GRPO's own settings for trl's GRPOTrainer, and the method's train function."""

from __future__ import annotations

from typing import Any

from trl import GRPOConfig, GRPOTrainer

from genlab.alignment.grpo.recipe import GrpoRecipe, GrpoTrainingConfig
from genlab.alignment.grpo.sampled_run import TrlAlgorithm, run_sampled_reward_method
from genlab.methods import MethodResult, RunOptions


def grpo_settings(training: GrpoTrainingConfig) -> dict[str, Any]:
    return {"loss_type": training.loss_type, "scale_rewards": training.scale_rewards}


GRPO = TrlAlgorithm("grpo", "GRPO", GRPOTrainer, GRPOConfig, grpo_settings)


def train_grpo(recipe: GrpoRecipe, options: RunOptions) -> MethodResult:
    """``genlab align grpo RECIPE``: GRPO on the recipe's prompts and rewards (see :mod:`genlab.alignment.grpo`)."""
    return run_sampled_reward_method(recipe, options, GRPO)
