"""Optimised model folders: a Hugging Face folder plus ``genlab_optimized.json``, written atomically.

A distilled or pruned model is a plain transformers folder (``save_pretrained``) that any tool
loads. A quantised model may not be: its weights are stored in the form its runtime needs (packed
int8 tensors, an ONNX graph). The manifest names the ``method``; when a method needs its own loader
(``loader`` is set in the manifest), :func:`genlab.models.load.load_folder` hands the folder to the
function registered here under that name, so ``load_model(folder)`` -- and with it ``generate``,
``eval``, ``serve`` -- works on every optimised model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path
from typing import Any

from genlab.errors import ModelLoadError

MANIFEST = "genlab_optimized.json"

# loader name -> "module:function"; the function takes (folder, dtype) and returns (model, tokenizer)
LOADERS: dict[str, str] = {}


def register_loader(name: str, target: str) -> None:
    LOADERS[name] = target


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


def loader_for(folder: str | Path) -> Callable[[Path, Any], tuple[Any, Any]] | None:
    """The registered loader the folder's manifest asks for, or None for a plain transformers folder."""
    manifest = read_manifest(folder)
    if manifest is None or not manifest.get("loader"):
        return None
    _import_known_loaders()
    name = str(manifest["loader"])
    if name not in LOADERS:
        known = ", ".join(sorted(LOADERS)) or "none"
        raise ModelLoadError(f"{folder} needs the loader {name!r}, which this genlab does not have (known: {known}).")
    module, function = LOADERS[name].split(":")
    return getattr(import_module(module), function)


def _import_known_loaders() -> None:
    """Optimisation modules register their loaders when imported."""
    for module in ("genlab.optimize.quantize",):
        try:
            import_module(module)
        except ImportError:  # pragma: no cover - an optional runtime is missing
            continue


@contextmanager
def optimized_folder(folder: str | Path, manifest: dict[str, Any]) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it gets the manifest and replaces ``folder`` in one rename."""
    from genlab.atomic import atomic_directory

    with atomic_directory(folder) as tmp:
        yield tmp
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def weights_size(path: str | Path) -> int:
    """Bytes on disk of a model's weights: every file in its folder but the tokenizer's and the manifests."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    skip = ("tokenizer", "vocab", "merges", "special_tokens", "added_tokens", "chat_template")
    total = 0
    for file in path.rglob("*"):
        if not file.is_file() or file.name.startswith(skip) or file.suffix in (".json", ".txt", ".md", ".jinja"):
            continue
        total += file.stat().st_size
    return total
