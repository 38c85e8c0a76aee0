"""A model genlab can read, as an ONNX Runtime GenAI model folder (converted once, kept in the model store).

ONNX Runtime GenAI runs an ONNX graph plus ``genai_config.json``; its own model builder
(``python -m onnxruntime_genai.models.builder -i SRC -o OUT -p int8 -e cpu``) writes both from a
transformers folder, quantising the MatMuls to 8 or 4 bits (``MatMulNBits``, block-wise with a scale
per block) when asked (:data:`BUILDER_ARGS`). genlab adds only where the input comes from and where the result goes, as
:mod:`genlab.serving.backends.ctranslate2_model` does for CTranslate2:

- **input**: a model pack, a plain transformers folder (a merged model: ``genlab adapters merge``, a
  pruned or distilled model), or a folder this module already wrote (used as it is). A GGUF file, a
  hub id and a genlab optimised folder in a runtime's own format are refused in one sentence (the
  builder quantises itself, from the fp32 model).
- **output**: ``$GENLAB_HOME/models/onnxruntime-genai/<name>-<content hash>-<precision>/``, keyed by
  the SHA-256 of the source's files (:func:`genlab.lineage.hashing.sha256_path`, a second or two for
  the default model), written to a temporary folder and renamed under a file lock (two servers
  starting at once convert once), with the HF tokenizer files and the chat template beside the graph
  (the server formats chats with the HF tokenizer, as every genlab backend does) and :data:`MANIFEST`
  saying what it was made from.

The builder runs in a child process: it is a script (``__main__``) that loads the whole model with
torch and writes gigabytes of temporary files, and a failure there must not take the server with it.
Converting the default model takes about 10 s on 2 cores (int8: about 250 MB on disk, int4 about 150 MB).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from genlab.atomic import atomic_directory, atomic_write_json
from genlab.errors import InvalidValueError
from genlab.home import models_dir
from genlab.lineage.hashing import sha256_path
from genlab.serving.backends import import_library
from genlab.serving.backends.conversion_source import TOKENIZER_FILES, cached_conversion, trained_context_window, transformers_folder

Precision = Literal["int8", "int4", "fp32"]
# The builder's arguments per precision: 8- or 4-bit MatMulNBits (round to nearest, int8 activations), or
# none (fp32: exact against genlab's engine, the tests). int8 is the default: on 50 DialogSum rows the
# default model scored ROUGE-1 0.148 in int8 and 0.132 in int4 against 0.145 in fp32 (the target is
# within 1 point); k-quant int4 with 8-bit sensitive layers (algo_config=k_quant_mixed) scored 0.126.
# Blocks of 32 weights per scale (the builder's default), not 128: 128 decoded a burst of 8 about a quarter
# faster, but then a row's greedy tokens depended on what shared its batch (2 of 4 default-model answers
# changed when decoded together; 576, its width, is not a multiple of 128). With 32 and 64 they do not.
BUILDER_ARGS: dict[str, list[str]] = {"int8": ["-p", "int8"], "int4": ["-p", "int4"], "fp32": ["-p", "fp32"]}
PRECISIONS: tuple[str, ...] = tuple(BUILDER_ARGS)
MANIFEST = "genlab-ort-genai.json"
GENAI_CONFIG = "genai_config.json"


@dataclass(frozen=True)
class OrtModel:
    """A converted model: its folder and what :data:`MANIFEST` says about it."""

    folder: Path
    source: str  # what it was converted from
    precision: str  # the builder's -p
    context_window: int  # the source config's max_position_embeddings

    @classmethod
    def read(cls, folder: Path) -> OrtModel:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        return cls(folder, str(data["source"]), str(data["precision"]), int(data["context_window"]))


def is_ort_folder(path: Path) -> bool:
    return (path / GENAI_CONFIG).is_file() and (path / MANIFEST).is_file()


def ort_model(model: str, precision: str = "int8", *, store: Path | None = None) -> OrtModel:
    """``model`` as an ONNX Runtime GenAI folder: converted now (once) unless it is one already."""
    if precision not in PRECISIONS:
        raise InvalidValueError(f"precision={precision!r} is not allowed: choose one of {', '.join(PRECISIONS)}.")
    path = Path(model).expanduser()
    if path.is_dir() and is_ort_folder(path):
        return OrtModel.read(path)
    source = transformers_folder(model, "onnxruntime-genai")
    _check_head_size(source)
    target = cached_conversion(
        model, source, store or models_dir() / "onnxruntime-genai", fingerprint=sha256_path(source), variant=precision,
        is_converted=is_ort_folder, convert=lambda target: convert(source, target, precision),
    )  # fmt: skip
    return OrtModel.read(target)


def _check_head_size(source: Path) -> None:
    """ONNX Runtime's CPU attention kernel (GroupQueryAttention) takes head sizes that are multiples of 16 only."""
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    heads, hidden = config.get("num_attention_heads"), config.get("hidden_size")
    head = config.get("head_dim") or (hidden // heads if isinstance(hidden, int) and isinstance(heads, int) and heads else None)
    if isinstance(head, int) and head % 16:
        raise InvalidValueError(
            f"{source} has attention heads of size {head}: ONNX Runtime's CPU attention takes multiples of 16 only "
            "(serve it with --backend ctranslate2 or --backend genlab)."
        )


def convert(source: Path, target: Path, precision: str) -> None:
    """ORT GenAI's model builder on ``source``; the folder appears at ``target`` complete or not at all."""
    og = import_library("onnxruntime-genai")  # the builder is its module: one sentence here if it is missing

    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    with atomic_directory(target) as tmp, tempfile.TemporaryDirectory(prefix="ort-genai-cache-") as cache:
        command = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(source), "-o", str(tmp),
                   *BUILDER_ARGS[precision], "-e", "cpu", "-c", cache]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not (tmp / GENAI_CONFIG).is_file():
            raise InvalidValueError(f"ONNX Runtime GenAI's model builder cannot convert {source}: {_last_error(done.stderr)}.")
        for name in TOKENIZER_FILES:  # the builder copies the tokenizer; keep everything the HF tokenizer reads
            if (source / name).is_file() and not (tmp / name).is_file():
                shutil.copy2(source / name, tmp / name)
        atomic_write_json(tmp / MANIFEST, {
            "source": str(source), "source_sha256": sha256_path(source), "precision": precision,
            "context_window": trained_context_window(config), "onnxruntime_genai": og.__version__,
        })  # fmt: skip


def _last_error(stderr: str) -> str:
    """The builder's own sentence: the last line of its traceback (its progress bars come before)."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "it exited without saying why").rstrip(".")
