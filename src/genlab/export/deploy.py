"""The lifecycle's ``deploy: {artifact: gguf, quant: ...}``: the deployed candidate exported to GGUF.

The deploy step hands over what it deploys (a model, and at most one adapter, merged on the way); this
writes the GGUF and its Modelfile into the step's folder through :func:`genlab.export.run.export_gguf`
(an ``export`` lineage run, linked from the step as a sub-run), and returns what ``serve.json``
records: the GGUF, the Modelfile, the ``ollama create`` command, and the ``genlab serve`` command that
serves the GGUF on llama.cpp.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError
from genlab.export.run import ExportRequest, export_gguf
from genlab.lineage import LineageStore

GGUF_FOLDER = "gguf"


def deploy_as_gguf(
    model: str, adapters: Mapping[str, str], folder: Path, *, quant: str, host: str, port: int,
    store: LineageStore | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Export ``model`` (with its one adapter merged) to ``folder/gguf``; the serve configuration's GGUF part."""
    if len(adapters) > 1:
        raise GenlabError(f"a GGUF deployment holds one merged model, and this one has {len(adapters)} adapters.")
    target = folder / GGUF_FOLDER
    shutil.rmtree(target, ignore_errors=True)  # left by an earlier attempt of this step: the export writes it anew
    source, base = (next(iter(adapters.values())), model) if adapters else (model, None)
    result = export_gguf(ExportRequest(source=source, output=target, quant=quant, base=base), store=store)
    command = ["genlab", "serve", "--model", result.model_gguf, "--backend", "llama.cpp", "--host", host, "--port", str(port)]
    return {
        "gguf": result.model_gguf, "modelfile": result.modelfile, "quant": result.quant, "export_run": result.run_id,
        "ollama_command": result.ollama_command, "command": shlex.join(command), "backend": "llama.cpp",
    }  # fmt: skip
