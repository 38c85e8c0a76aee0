"""The loaders of the quantised folders :mod:`genlab.optimize.quantize.run` writes, registered with the model
layer (:mod:`genlab.models.optimized`) when ``genlab.optimize`` is imported.

Each loader imports its quantiser when a folder is loaded, not here: ``genlab.optimize`` is imported
by the CLI at start-up (``genlab optimize distill`` is a registered method), and the quantisers import
torch, transformers and onnxruntime (seconds), which ``genlab --help`` must not wait for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genlab.models.optimized import register_loader
from genlab.optimize.artifact import INT8_LOADER, ONNX_LOADER


def load_int8_folder(folder: Path, dtype: Any) -> tuple[Any, Any]:
    from genlab.optimize.quantize.run import load_quantized  # torch: imported when a folder is loaded

    return load_quantized(folder, dtype)


def load_onnx_folder(folder: Path, dtype: Any) -> tuple[Any, Any]:
    from genlab.optimize.quantize.onnx import load_onnx  # onnxruntime and transformers: imported when a folder is loaded

    return load_onnx(folder, dtype)


register_loader(INT8_LOADER, load_int8_folder)
register_loader(ONNX_LOADER, load_onnx_folder)
