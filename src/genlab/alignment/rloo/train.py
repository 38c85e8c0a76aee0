"""RLOO's own settings for trl's RLOOTrainer, and the method's train function."""

from __future__ import annotations

from typing import Any

from trl import RLOOConfig, RLOOTrainer

from genlab.alignment.grpo.sampled_run import TrlAlgorithm, run_sampled_reward_method
from genlab.alignment.rloo.recipe import RlooRecipe, RlooTrainingConfig
from genlab.methods import MethodResult, RunOptions


def rloo_settings(training: RlooTrainingConfig) -> dict[str, Any]:
    return {"normalize_advantages": training.normalize_advantages}


RLOO = TrlAlgorithm("rloo", "RLOO", RLOOTrainer, RLOOConfig, rloo_settings)


def train_rloo(recipe: RlooRecipe, options: RunOptions) -> MethodResult:
    """``genlab align rloo RECIPE``: RLOO on the recipe's prompts and rewards (see :mod:`genlab.alignment.rloo`)."""
    return run_sampled_reward_method(recipe, options, RLOO)
