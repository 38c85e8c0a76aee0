"""A model genlab can read, as a CTranslate2 model folder (converted once, kept in the model store).

CTranslate2 runs its own model format (``model.bin``, weights quantised at conversion). Its own
converter, ``ctranslate2.converters.TransformersConverter``, reads a transformers folder; genlab adds
only where the input comes from and where the result goes:

- **input**: a model pack (its safetensors folder in the store), a plain transformers folder (a merged
  model: ``genlab adapters merge``, a pruned or distilled model), or a folder this module already wrote
  (used as it is). A GGUF file, a hub id and a genlab optimised folder in a runtime's own format
  (torch int8, ONNX) are refused in one sentence: CTranslate2 quantises to int8 itself, from the fp32 model.
- **output**: ``$GENLAB_HOME/models/ctranslate2/<name>-<fingerprint>-<quantization>/``, written to a
  temporary folder and renamed under a file lock (two servers starting at once convert once), with the
  tokenizer files beside the weights and :data:`MANIFEST` saying what it was made from. The key is the
  source's fingerprint (sizes and times), so a retrained folder converts again.

Converting the default model takes about 30 s on 2 cores (int8: 135 MB on disk against 538 MB fp32).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from genlab.atomic import atomic_directory, atomic_write_json
from genlab.errors import InvalidValueError
from genlab.home import models_dir
from genlab.lineage.hashing import path_fingerprint
from genlab.serving.backends import import_library
from genlab.serving.backends.conversion_source import TOKENIZER_FILES, cached_conversion, trained_context_window, transformers_folder

Quantization = Literal["int8", "int8_float32", "float32"]
QUANTIZATIONS: tuple[str, ...] = ("int8", "int8_float32", "float32")
MANIFEST = "genlab-ctranslate2.json"


@dataclass(frozen=True)
class Ct2Model:
    """A converted model: its folder and what :data:`MANIFEST` says about it."""

    folder: Path
    source: str  # what it was converted from
    quantization: str  # CTranslate2's compute type of the stored weights
    context_window: int  # the source config's max_position_embeddings

    @classmethod
    def read(cls, folder: Path) -> Ct2Model:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        return cls(folder, str(data["source"]), str(data["quantization"]), int(data["context_window"]))


def is_ct2_folder(path: Path) -> bool:
    return (path / "model.bin").is_file() and (path / MANIFEST).is_file()


def ct2_model(model: str, quantization: str = "int8", *, store: Path | None = None) -> Ct2Model:
    """``model`` as a CTranslate2 folder: converted now (once) unless it is one already."""
    if quantization not in QUANTIZATIONS:
        raise InvalidValueError(f"quantization={quantization!r} is not allowed: choose one of {', '.join(QUANTIZATIONS)}.")
    path = Path(model).expanduser()
    if path.is_dir() and is_ct2_folder(path):
        return Ct2Model.read(path)
    source = transformers_folder(model, "ctranslate2")
    target = cached_conversion(
        model, source, store or models_dir() / "ctranslate2", fingerprint=path_fingerprint(source), variant=quantization,
        is_converted=is_ct2_folder, convert=lambda target: convert(source, target, quantization),
    )  # fmt: skip
    return Ct2Model.read(target)


def convert(source: Path, target: Path, quantization: str) -> None:
    """CTranslate2's converter on ``source``; the folder appears at ``target`` complete or not at all."""
    ctranslate2 = import_library("ctranslate2")
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    copy = [name for name in TOKENIZER_FILES if (source / name).is_file()]
    with atomic_directory(target) as tmp:
        converter = ctranslate2.converters.TransformersConverter(str(source), copy_files=copy)
        try:
            converter.convert(str(tmp), quantization=quantization, force=True)
        except (ValueError, NotImplementedError) as error:  # an architecture CTranslate2 has no loader for
            raise InvalidValueError(f"CTranslate2 cannot convert {source}: {_first_line(error)}.") from None
        atomic_write_json(tmp / MANIFEST, {
            "source": str(source), "source_fingerprint": path_fingerprint(source), "quantization": quantization,
            "context_window": trained_context_window(config), "ctranslate2": ctranslate2.__version__,
        })  # fmt: skip


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(".")
