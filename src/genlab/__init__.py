"""genlab: a local-first workbench for the generative-AI project lifecycle on open models.

Importing genlab is cheap; heavy libraries (torch, transformers) load when a function needs them.

    import genlab
    completion = genlab.generate("smollm2-135m-instruct", "Summarise: ...", max_new_tokens=60)
    model = genlab.load_model("smollm2-135m-instruct")
"""

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "generate": "genlab.generation.api",
    "load_model": "genlab.models.load",
    "GenerationSettings": "genlab.generation.settings",
    "GenerationEngine": "genlab.generation.engine",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'genlab' has no attribute {name!r}")
