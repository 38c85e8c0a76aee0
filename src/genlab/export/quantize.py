"""The number formats of an exported GGUF: f32/f16/q8_0 by gguf's writer, k-quants by llama.cpp's quantizer.

- ``f32``, ``f16``, ``q8_0``: written directly, tensor by tensor, with numpy and ``gguf.quants`` (the
  gguf package's own Q8_0 encoder, the same blocks llama.cpp writes). As in llama.cpp's
  ``convert_hf_to_gguf.py``, one-dimensional tensors (norms, biases) stay f32, and a matrix whose rows
  do not split into 32-value blocks stays f16 under q8_0.
- every other type llama.cpp's quantizer offers (``q4_k_m``, ``q5_k_m``, ``q6_k``, ``q4_0``, ...):
  an f16 GGUF is written first and handed to ``llama_model_quantize`` from llama-cpp-python, which
  chooses per tensor as llama.cpp's ``llama-quantize`` does. Without llama-cpp-python, one sentence
  says how to get it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np

from genlab.errors import BackendUnavailableError, InvalidValueError

WRITER_QUANTS = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16, "q8_0": gguf.GGMLQuantizationType.Q8_0}
FILE_TYPES = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
# llama.cpp's quantizer: the name after LLAMA_FTYPE_MOSTLY_ in llama-cpp-python, lower-cased.
LLAMA_CPP_QUANTS = (
    "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k",
)  # fmt: skip
QUANTS = (*WRITER_QUANTS, *LLAMA_CPP_QUANTS)


def check_quant(quant: str) -> str:
    """``quant`` lower-cased, or one sentence naming the types there are."""
    name = quant.lower()
    if name not in QUANTS:
        raise InvalidValueError(f"quant={quant!r} is not allowed: choose one of {', '.join(QUANTS)}.")
    return name


def needs_llama_cpp(quant: str) -> bool:
    return check_quant(quant) not in WRITER_QUANTS


def tensor_type(quant: str, shape: tuple[int, ...]) -> gguf.GGMLQuantizationType:
    """The type a tensor of ``shape`` (numpy order, rows last) is stored in under a writer quant."""
    wanted = WRITER_QUANTS[quant]
    if len(shape) < 2:
        return gguf.GGMLQuantizationType.F32
    if wanted == gguf.GGMLQuantizationType.Q8_0:
        block, _ = gguf.GGML_QUANT_SIZES[wanted]
        if shape[-1] % block != 0:
            return gguf.GGMLQuantizationType.F16
    return wanted


def encode(array: np.ndarray, qtype: gguf.GGMLQuantizationType) -> np.ndarray:
    """``array`` (float32) in ``qtype``: a float array, or the raw bytes of quantised blocks."""
    if qtype == gguf.GGMLQuantizationType.F32:
        return np.ascontiguousarray(array, dtype=np.float32)
    if qtype == gguf.GGMLQuantizationType.F16:
        return np.ascontiguousarray(array, dtype=np.float16)
    return gguf.quants.quantize(np.ascontiguousarray(array, dtype=np.float32), qtype)


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


@contextlib.contextmanager
def quiet_llama_cpp() -> Iterator[None]:
    """llama.cpp's log lines (per-tensor progress, fallbacks) kept to errors, as ``Llama(verbose=False)`` does.

    llama-cpp-python prints llama.cpp's log through its logger ``llama-cpp-python``: errors only, then
    the level it had.
    """
    logger = logging.getLogger("llama-cpp-python")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def quantize_with_llama_cpp(source: Path, target: Path, quant: str, *, threads: int = 0) -> None:
    """Quantise the f16 GGUF ``source`` to ``target`` with llama.cpp's own quantizer."""
    name = check_quant(quant)
    if not llama_cpp_available():
        raise BackendUnavailableError(
            f"quant={name} is made by llama.cpp's quantizer, which needs llama-cpp-python "
            "(`make setup-llamacpp` builds it); f32, f16 and q8_0 need nothing more."
        )
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{name.upper()}")
    params.nthread = threads
    with quiet_llama_cpp():
        code = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), params)
    if code != 0:
        raise BackendUnavailableError(f"llama.cpp's quantizer failed on {source} (code {code}) while writing {name}.")
