"""Where a fine-tuning run's result goes: a peft adapter, or a whole model for full-weight methods.

Adapters go to ``$GENLAB_HOME/adapters/<recipe name>`` and models to ``$GENLAB_HOME/finetuned/<recipe
name>`` (:func:`genlab.training.saving.save_trained`: a name already taken gets ``-2``, ``-3``, ...;
written atomically; the base recorded with its fingerprint and the run). This module only says what a
fine-tuning recipe adds to the record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genlab.models.load import LoadedModel
from genlab.training.saving import save_trained
from genlab.tuning.recipe import FinetuneRecipe


def save_output(
    model: Any, loaded: LoadedModel, recipe: FinetuneRecipe, run_id: str, fingerprint: str, metrics: dict[str, float],
    *, adapter: bool,
) -> Path:
    extra = {
        "recipe": recipe.name,
        "trainable_params": int(metrics["trainable_params"]),
        "total_params": int(metrics["total_params"]),
        "trainable_percent": metrics["trainable_percent"],
    }
    return save_trained(
        model, loaded, name=recipe.name, adapter=adapter, method=recipe.method,
        run_id=run_id, fingerprint=fingerprint, extra=extra,
    )  # fmt: skip
