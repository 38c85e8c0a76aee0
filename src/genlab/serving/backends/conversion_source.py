"""Converting a model once for a serving runtime (CTranslate2, ONNX Runtime GenAI): the source and the cache.

- :func:`transformers_folder`: the plain transformers folder behind a pack name or a folder, or one
  sentence saying why a model cannot be converted (a GGUF file, a folder of genlab's int8 weights,
  no ``config.json``);
- :func:`cached_conversion`: the converted folder under genlab's models folder, named by the model and
  the source's fingerprint, converted under a file lock by the first process that needs it (the
  converter writes it atomically), found by every later one;
- :func:`trained_context_window`: the positions a config's model was trained on.

Written here: which folders a runtime may read and where conversions are kept are genlab's policies.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

from genlab.errors import InvalidValueError, ModelNotFoundError
from genlab.models.packs import PACKS, ensure_converted
from genlab.optimize.artifact import read_manifest

# What the HF tokenizer reads, kept beside converted weights: backends tokenise and format chats with it.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "vocab.json", "merges.txt", "generation_config.json")  # fmt: skip


def transformers_folder(model: str, backend: str) -> Path:
    """The plain transformers folder behind ``model`` (a pack or a folder), or one sentence saying why not."""
    if model in PACKS:
        pack = PACKS[model]
        if pack.kind != "generator":
            raise InvalidValueError(f"the pack {model!r} is an {pack.kind}, not a text generator.")
        return ensure_converted(pack)
    path = Path(model).expanduser()
    if path.is_file():
        raise InvalidValueError(
            f"{path.name} is a file: the {backend} backend converts model folders (a GGUF file is served by "
            "--backend llama.cpp or --backend genlab)."
        )
    if not path.is_dir():
        raise ModelNotFoundError(f"the {backend} backend needs a model pack or a local model folder: {model!r} is neither.")
    if not (path / "config.json").is_file():
        raise InvalidValueError(f"{path} is not a transformers model folder (it has no config.json).")
    optimized = read_manifest(path)
    if optimized is not None and optimized.get("loader"):
        raise InvalidValueError(
            f"{path} holds genlab's {optimized.get('method')} weights, which only genlab's engine reads: serve it "
            f"with --backend genlab, or give {backend} the fp32 model it was made from (it quantises it itself)."
        )
    return path


def cached_conversion(
    model: str, source: Path, store: Path, *, fingerprint: str, variant: str,
    is_converted: Callable[[Path], bool], convert: Callable[[Path], None],
) -> Path:  # fmt: skip
    """``store/<name>-<fingerprint[:12]>-<variant>``, converted by ``convert(target)`` unless it is already."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", PACKS[model].name if model in PACKS else source.name).strip("-") or "model"
    target = store / f"{name}-{fingerprint[:12]}-{variant}"
    if is_converted(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not is_converted(target):  # another process may have finished while we waited
            convert(target)
    return target


def trained_context_window(config: dict[str, Any]) -> int:
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return 2048
