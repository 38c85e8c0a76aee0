"""Optional serving backends, each import-guarded: ``get_backend(name)`` returns the backend's class.

=====================  ============================================  ===============  =============================
name                   library (how to get it)                       runs on          adapters
=====================  ============================================  ===============  =============================
``onnxruntime-genai``  onnxruntime-genai (a dependency of genlab)    CPU, int8/int4   none: merge them first
``ctranslate2``        ctranslate2 (a dependency of genlab)          CPU, int8        none: merge them first
``llama.cpp``          llama-cpp-python (``make setup-llamacpp``)    CPU, GGUF files  none
``vllm``               vllm (``pip install vllm``)                   NVIDIA GPU       LoRA (``LoRARequest``)
=====================  ============================================  ===============  =============================

genlab's own engine (``--backend genlab``, the default) lives with the server in
:mod:`genlab.serving`; it is the only backend that serves every adapter kind trained here, several
per batch (onnxruntime-genai and ctranslate2 batch requests on one merged model). Each backend class here implements :class:`genlab.serving.backend.Backend` and is
built as ``cls(model, adapters={name: path}, context_window=None)``.

Nothing here imports an optional library at import time: ``get_backend`` checks that the library
can be found and raises :class:`~genlab.errors.BackendUnavailableError` with one sentence saying how
to install it when it cannot.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

from genlab.errors import BackendUnavailableError, InvalidValueError


@dataclass(frozen=True)
class OptionalBackend:
    name: str  # the --backend value
    module: str  # the genlab module holding the class
    class_name: str
    library: str  # the import name of the library it needs
    missing: str  # the sentence shown when the library cannot be imported

    def is_installed(self) -> bool:
        return importlib.util.find_spec(self.library) is not None


OPTIONAL_BACKENDS: dict[str, OptionalBackend] = {
    backend.name: backend
    for backend in [
        OptionalBackend(
            name="onnxruntime-genai",
            module="genlab.serving.backends.ort_genai_backend",
            class_name="OrtGenaiBackend",
            library="onnxruntime_genai",
            missing="the onnxruntime-genai backend needs ONNX Runtime GenAI, which is not installed: run "
            "`pip install onnxruntime-genai` (a wheel, about 40 MB; make setup installs it).",
        ),
        OptionalBackend(
            name="ctranslate2",
            module="genlab.serving.backends.ctranslate2_backend",
            class_name="CTranslate2Backend",
            library="ctranslate2",
            missing="the ctranslate2 backend needs CTranslate2, which is not installed: run `pip install ctranslate2` "
            "(a wheel, about 150 MB; make setup installs it).",
        ),
        OptionalBackend(
            name="llama.cpp",
            module="genlab.serving.backends.llamacpp",
            class_name="LlamaCppBackend",
            library="llama_cpp",
            missing="the llama.cpp backend needs llama-cpp-python, which is not installed: "
            "run `make setup-llamacpp` (it compiles llama.cpp for this CPU, 10-20 minutes).",
        ),
        OptionalBackend(
            name="vllm",
            module="genlab.serving.backends.vllm",
            class_name="VllmBackend",
            library="vllm",
            missing="the vLLM backend needs vLLM and an NVIDIA GPU: run `pip install vllm` on a machine with "
            "a CUDA GPU (on a CPU, use --backend genlab or --backend llama.cpp).",
        ),
    ]
}


def get_backend(name: str) -> type:
    """The class of the optional backend ``name``, after checking that its library is installed."""
    backend = OPTIONAL_BACKENDS.get(name)
    if backend is None:
        known = ", ".join(["genlab", *OPTIONAL_BACKENDS])
        raise InvalidValueError(f"backend={name!r} is not allowed: choose one of {known}.")
    if not backend.is_installed():
        raise BackendUnavailableError(backend.missing)
    return getattr(importlib.import_module(backend.module), backend.class_name)


def import_library(name: str) -> Any:
    """Import the library of backend ``name``, turning a missing or broken install into one sentence."""
    backend = OPTIONAL_BACKENDS[name]
    try:
        return importlib.import_module(backend.library)
    except ModuleNotFoundError as error:
        if error.name == backend.library:
            raise BackendUnavailableError(backend.missing) from None
        raise BackendUnavailableError(_broken(backend, error)) from None
    except (ImportError, OSError) as error:  # installed but broken: a missing shared library, a CUDA mismatch
        raise BackendUnavailableError(_broken(backend, error)) from None


def _broken(backend: OptionalBackend, error: BaseException) -> str:
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return (
        f"the {backend.name} backend's library {backend.library!r} is installed but fails to import: "
        f"{first_line.rstrip('.')}."
    )


def installed_backends() -> list[str]:
    """Names of the optional backends whose library is installed here (for benchmarks and --help)."""
    return [name for name, backend in OPTIONAL_BACKENDS.items() if backend.is_installed()]
