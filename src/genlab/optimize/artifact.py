"""Optimised model folders: a Hugging Face folder plus ``genlab_optimized.json``, written atomically.

A distilled or pruned model is a plain transformers folder (``save_pretrained``) that any tool
loads. A quantised model may not be: its weights are stored in the form its runtime needs (packed
int8 tensors, an ONNX graph). The manifest and the loaders registered for it are the model layer's
(:mod:`genlab.models.optimized`), so ``load_model(folder)`` -- and with it ``generate``, ``eval``,
``serve`` -- works on every optimised model; this module writes the folders and measures their size.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from genlab.atomic import atomic_directory
from genlab.models.optimized import MANIFEST, read_manifest

# The loaders a manifest may name for folders transformers cannot load alone (genlab.optimize.loaders).
INT8_LOADER = "int8-dynamic"  # packed int8 weights (genlab.optimize.quantize.int8_layers)
ONNX_LOADER = "onnx-int8"  # an ONNX Runtime graph with int8 weights (genlab.optimize.quantize.onnx)

__all__ = ["MANIFEST", "optimized_folder", "read_manifest", "weights_size"]


@contextmanager
def optimized_folder(folder: str | Path, manifest: dict[str, Any]) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it gets the manifest and replaces ``folder`` in one rename."""
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
