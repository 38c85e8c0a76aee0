"""KTO's own settings and rows for trl's KTOTrainer, and the method's train function."""

from __future__ import annotations

from typing import Any

from trl import KTOConfig, KTOTrainer

from genlab.alignment.kto.data import kto_rows
from genlab.alignment.kto.preference_run import (
    PREFERENCE_METRICS,
    PreferenceAlgorithm,
    run_preference_method,
)
from genlab.alignment.kto.recipe import KtoRecipe
from genlab.methods import MethodResult, RunOptions


def kto_settings(recipe: KtoRecipe) -> dict[str, Any]:
    return {"desirable_weight": recipe.desirable_weight, "undesirable_weight": recipe.undesirable_weight}


KTO = PreferenceAlgorithm(
    "kto", "KTO", KTOTrainer, KTOConfig, lambda pairs, chat: kto_rows(pairs, chat=chat), kto_settings, PREFERENCE_METRICS
)


def train_kto(recipe: KtoRecipe, options: RunOptions) -> MethodResult:
    """``genlab align kto RECIPE``: KTO on the recipe's pairs made unpaired (see :mod:`genlab.alignment.kto`)."""
    return run_preference_method(recipe, options, KTO)
