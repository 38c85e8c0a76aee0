"""Where a fine-tuning run's result goes: a peft adapter, or a whole model for full-weight methods.

Adapters go to ``$GENLAB_HOME/adapters/<recipe name>`` and models to ``$GENLAB_HOME/finetuned/<recipe
name>``; a name already taken gets ``-2``, ``-3``, ... so no earlier result is ever overwritten. Both
are written atomically and record the base they came from (its fingerprint) and the run.

The base is recorded as :func:`genlab.models.adapters.base_record` writes it for adapters: how genlab
loads it (``base_model``: a pack name, hub id or path), its source kind, the folder its weights were
read from and, for a hub model, its hub id -- so a result still names its base after the model store
moves, and an adapter's ``adapter_config.json`` points plain peft at a base it can open offline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from genlab.home import genlab_home
from genlab.models.adapters import base_record, save_adapter
from genlab.models.load import LoadedModel
from genlab.tuning.recipe import FinetuneRecipe

MODEL_RECORD = "genlab_model.json"


def free_folder(parent: Path, name: str) -> Path:
    candidate, number = parent / name, 1
    while candidate.exists():
        number += 1
        candidate = parent / f"{name}-{number}"
    return candidate


def save_output(
    model: Any, loaded: LoadedModel, recipe: FinetuneRecipe, run_id: str, fingerprint: str, metrics: dict[str, float]
) -> Path:
    extra = {
        "recipe": recipe.name,
        "trainable_params": int(metrics["trainable_params"]),
        "total_params": int(metrics["total_params"]),
        "trainable_percent": metrics["trainable_percent"],
    }
    if recipe.saves_adapter:
        folder = free_folder(genlab_home() / "adapters", recipe.name)
        return save_adapter(
            model, folder, base=loaded, method=recipe.method, run_id=run_id, extra=extra, fingerprint=fingerprint
        )
    return save_model(model, loaded, free_folder(genlab_home() / "finetuned", recipe.name), recipe, run_id, fingerprint, extra)


def save_model(
    model: Any, loaded: LoadedModel, folder: Path, recipe: FinetuneRecipe, run_id: str, fingerprint: str, extra: dict
) -> Path:
    """A standalone model folder (config, safetensors, tokenizer) loadable by ``genlab`` and transformers."""
    from genlab.atomic import atomic_directory

    model.eval()
    with atomic_directory(folder) as tmp:
        model.save_pretrained(tmp)
        loaded.tokenizer.save_pretrained(tmp)
        record = {**base_record(loaded), "base_fingerprint": fingerprint, "method": recipe.method, "run_id": run_id, **extra}
        (tmp / MODEL_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return folder
