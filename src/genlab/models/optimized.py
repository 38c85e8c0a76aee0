"""Optimised model folders as the model layer reads them: the manifest and the loaders registered for it.

An optimised folder (``genlab optimize``) is a Hugging Face folder plus ``genlab_optimized.json``. A
quantised one may store its weights in its runtime's own form (packed int8 tensors, an ONNX graph);
its manifest then names a ``loader``, and :func:`genlab.models.load.load_folder` hands the folder to
the function registered under that name. The optimise layer registers its loaders here when it is
imported (``genlab.optimize`` imports ``genlab.optimize.loaders``), as functions: the model layer
never imports the layer above it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from genlab.errors import ModelLoadError

MANIFEST = "genlab_optimized.json"

FolderLoader = Callable[[Path, Any], tuple[Any, Any]]  # (folder, dtype) -> (model, tokenizer)
_LOADERS: dict[str, FolderLoader] = {}


def register_loader(name: str, loader: FolderLoader) -> None:
    _LOADERS[name] = loader


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"{path} cannot be read: {error}.") from None
    if not isinstance(manifest, dict):
        raise ModelLoadError(f"{path} must hold a JSON object.")
    return manifest


def loader_for(folder: str | Path) -> FolderLoader | None:
    """The registered loader the folder's manifest asks for, or None for a plain transformers folder."""
    manifest = read_manifest(folder)
    if manifest is None or not manifest.get("loader"):
        return None
    name = str(manifest["loader"])
    if name not in _LOADERS:
        known = ", ".join(sorted(_LOADERS)) or "none registered"
        raise ModelLoadError(
            f"{folder} needs the loader {name!r} (known: {known}); import genlab.optimize, which registers its loaders."
        )
    return _LOADERS[name]
