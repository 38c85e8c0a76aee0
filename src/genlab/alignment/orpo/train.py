"""ORPO's settings and rows for trl's ORPOTrainer (``trl.experimental.orpo`` in trl 1.16), and the train function."""

from __future__ import annotations

from typing import Any

from trl.experimental.orpo import ORPOConfig, ORPOTrainer

from genlab.alignment.dpo_data import trl_rows
from genlab.alignment.kto.preference_run import (
    PREFERENCE_METRICS,
    PreferenceAlgorithm,
    run_preference_method,
)
from genlab.alignment.orpo.recipe import OrpoRecipe
from genlab.methods import MethodResult, RunOptions

# ORPO's own per-step figures beside the loss: the log odds ratio and the likelihood loss on chosen answers
ORPO_METRICS = {**PREFERENCE_METRICS, "log_odds_ratio": "train_log_odds_ratio", "nll_loss": "train_nll_loss"}


def orpo_settings(recipe: OrpoRecipe) -> dict[str, Any]:
    return {"remove_unused_columns": False}  # ORPO's collator reads the raw columns; λ is the shared ``beta``


ORPO = PreferenceAlgorithm(
    "orpo", "ORPO", ORPOTrainer, ORPOConfig, lambda pairs, chat: trl_rows(pairs, chat=chat), orpo_settings, ORPO_METRICS
)


def train_orpo(recipe: OrpoRecipe, options: RunOptions) -> MethodResult:
    """``genlab align orpo RECIPE``: ORPO on the recipe's preference pairs (see :mod:`genlab.alignment.orpo`)."""
    return run_preference_method(recipe, options, ORPO)
