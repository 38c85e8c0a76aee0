"""Deploy: the serve configuration of the chosen artifact, and optionally the server itself.

``serve.json`` holds what ``genlab serve`` needs (``model``, ``adapters`` as served name -> folder,
``host``, ``port``) and the exact command line. The artifact is the optimised model when the recipe
optimises (``deploy.artifact: optimized``), else the chosen candidate: its model, plus its adapter
served under the candidate's name. With ``start: true`` the step starts that command in the
background (its output in ``serve.log``), waits for ``/health``, and records the pid and URL; such a
step is reused only while that server still answers (a server is not a file that stays put), and it
refuses to start a second server on a port something already answers on.

The backend: a model without adapters is served by ONNX Runtime GenAI (``--backend onnxruntime-genai``,
int8), the fastest CPU backend of ``bench/backends.py`` for a merged model, or by CTranslate2
(``--backend ctranslate2``, int8) when ONNX Runtime GenAI cannot serve it or the recipe says
``deploy.backend: ctranslate2``; the step converts it into its own folder (``onnxruntime-genai/`` or
``ctranslate2/``), so the server starts without converting. When the optimised artifact is in a format
only genlab's engine reads (torch int8, ONNX), the backend quantises the same candidate's fp32 weights
itself (its adapter merged on the way, recorded as a merge run). A candidate served with its adapter
stays on genlab's engine (adapters per request, several per batch), and so does anything neither
backend can convert; ``serve.json`` says which backend and why. ``model`` stays
the deployed artifact; ``backend_model`` is the folder the command serves.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

from genlab.atomic import atomic_write_json
from genlab.errors import GenlabError, InvalidValueError
from genlab.export.deploy import deploy_as_gguf
from genlab.models.merge import merge_adapter_into_model
from genlab.optimize.artifact import read_manifest
from genlab.pipeline.candidates import Candidate, candidate_inputs, resolve_candidate
from genlab.pipeline.step import StepContext, StepOutcome
from genlab.pipeline.workspace import StepFile
from genlab.serving.backends import OPTIONAL_BACKENDS
from genlab.serving.backends.ctranslate2_model import ct2_model
from genlab.serving.backends.ort_genai_model import ort_model

# Backends for a merged model, fastest first by bench/backends.py's table (README, "Which backend to pick"),
# each with how it converts a transformers folder into the folder it serves and the precision it writes.
FAST_BACKENDS: dict[str, tuple[Callable[..., Any], str]] = {
    "onnxruntime-genai": (lambda model, store: ort_model(model, "int8", store=store), "int8"),
    "ctranslate2": (lambda model, store: ct2_model(model, "int8", store=store), "int8"),
}


class DeployStage:
    kind = "deploy"

    def settings(self, ctx: StepContext) -> Any:
        assert ctx.recipe.deploy is not None
        return {"deploy": ctx.recipe.deploy.model_dump(), "serves_optimised": self._serves_optimised(ctx)}

    def always_runs(self, ctx: StepContext) -> bool:
        """A started server is reused while the one the last run started still answers; else it starts again."""
        if not (ctx.recipe.deploy and ctx.recipe.deploy.start):
            return False
        return not server_answers(ctx.folder / "serve.json")

    def inputs(self, ctx: StepContext) -> dict[str, StepFile]:
        if self._serves_optimised(ctx):  # and the candidate, which CTranslate2 may quantise itself
            optimised = {"model": StepFile(ctx.output("optimise", "model"), "model", "optimised model")}
            return optimised | candidate_inputs(ctx, self._optimised_candidate(ctx))
        return candidate_inputs(ctx, self._candidate(ctx))

    def _optimised_candidate(self, ctx: StepContext) -> Candidate:
        return resolve_candidate(ctx, ctx.state("optimise").summary["candidate"])

    def _serves_optimised(self, ctx: StepContext) -> bool:
        return ctx.recipe.deploy is not None and ctx.recipe.deploy.artifact == "optimized" and "optimise" in ctx.states

    def _candidate(self, ctx: StepContext) -> Candidate:
        assert ctx.recipe.deploy is not None
        return resolve_candidate(ctx, ctx.recipe.deploy.candidate)

    def run(self, ctx: StepContext, run: Any) -> StepOutcome:
        settings = ctx.recipe.deploy
        assert settings is not None
        if self._serves_optimised(ctx):
            candidate = self._optimised_candidate(ctx)
            served = {"model": str(ctx.output("optimise", "model")), "adapters": {}, "candidate": candidate.name}
        else:
            candidate = self._candidate(ctx)
            served = self._candidate_config(candidate)
        if settings.artifact == "gguf":  # the candidate exported to GGUF and served by llama.cpp
            return self._run_gguf(ctx, served)
        ctx.progress("preparing the model for its serving backend")
        backend, backend_model, why, sub_runs = serving_backend(ctx.folder, served, candidate, settings.backend, lineage=run.store)
        served |= {"backend": backend, "backend_model": backend_model or served["model"], "backend_reason": why}
        command = ["genlab", "serve", "--model", served["backend_model"], "--backend", backend]
        for name, path in served["adapters"].items():
            command += ["--adapter", f"{name}={path}"]
        command += ["--host", settings.host, "--port", str(settings.port)]
        url = f"http://{settings.host}:{settings.port}"
        config = {**served, "host": settings.host, "port": settings.port, "url": url, "command": shlex.join(command),
                  "started": False, "pid": None}  # fmt: skip
        if settings.start:
            config["pid"] = start_server(command, ctx.folder / "serve.log", url, settings.start_timeout)
            config["started"] = True
        serve_file = atomic_write_json(ctx.folder / "serve.json", config)
        outputs = {"serve": StepFile(serve_file, "deployment", "serve configuration")}
        if backend_model is not None:
            outputs["backend_model"] = StepFile(Path(backend_model), "model", f"{backend} model")
        return StepOutcome(outputs=outputs, summary=config, sub_runs=sub_runs)

    def _run_gguf(self, ctx: StepContext, served: dict[str, Any]) -> StepOutcome:
        """``deploy: {artifact: gguf}``: GGUF + Modelfile in the step's folder (an export run), served by llama.cpp."""
        settings = ctx.recipe.deploy
        assert settings is not None
        ctx.progress(f"exporting {served['candidate']} to GGUF ({settings.quant})")
        exported = deploy_as_gguf(served["model"], served["adapters"], ctx.folder, quant=settings.quant,
                                  host=settings.host, port=settings.port)  # fmt: skip
        url = f"http://{settings.host}:{settings.port}"
        config = {**served, **exported, "host": settings.host, "port": settings.port, "url": url, "started": False, "pid": None}
        if settings.start:
            config["pid"] = start_server(shlex.split(exported["command"]), ctx.folder / "serve.log", url, settings.start_timeout)
            config["started"] = True
        serve_file = atomic_write_json(ctx.folder / "serve.json", config)
        outputs = {
            "serve": StepFile(serve_file, "deployment", "serve configuration"),
            "gguf": StepFile(Path(exported["gguf"]), "gguf", f"GGUF model ({settings.quant})"),
            "modelfile": StepFile(Path(exported["modelfile"]), "modelfile", "Ollama Modelfile"),
        }
        return StepOutcome(outputs=outputs, summary=config, sub_runs={"export": exported["export_run"]})

    def _candidate_config(self, candidate: Candidate) -> dict[str, Any]:
        if len(candidate.adapters) > 1:
            raise GenlabError(
                f"candidate {candidate.name!r} stacks {len(candidate.adapters)} adapters, which genlab serve cannot "
                "apply together: add an optimise step (it merges them) or deploy another candidate."
            )
        adapters = {candidate.name: str(candidate.adapters[0])} if candidate.adapters else {}
        return {"model": candidate.model, "adapters": adapters, "candidate": candidate.name}


def serving_backend(
    folder: Path, served: dict[str, Any], candidate: Candidate, backend: str | None = None, *, lineage: Any = None
) -> tuple[str, str | None, str, dict[str, str]]:
    """(backend, the folder it serves or None for ``served["model"]`` itself, why, merge runs) for a deployment.

    A merge of the candidate's adapter is recorded into ``lineage`` (the step's store; None: the default one).

    ``backend``: one of :data:`FAST_BACKENDS`, or None for the first of them that can serve the model.
    """
    if served["adapters"]:
        return "genlab", None, "the adapter is served per request by genlab's engine", {}
    reasons = []
    for name in [backend] if backend else list(FAST_BACKENDS):
        if not OPTIONAL_BACKENDS[name].is_installed():
            reasons.append(f"{name} is not installed")
            continue
        try:
            return _converted(folder, served, candidate, name, lineage)
        except InvalidValueError as error:  # a model it cannot read (a GGUF file, an architecture it lacks)
            reasons.append(f"{name} cannot serve it: {error}")
    return "genlab", None, "; ".join(reasons), {}


def _converted(
    folder: Path, served: dict[str, Any], candidate: Candidate, name: str, lineage: Any
) -> tuple[str, str | None, str, dict[str, str]]:
    """The deployment served by ``name``, converted into the step's folder; InvalidValueError when it cannot."""
    convert, precision = FAST_BACKENDS[name]
    model, sub_runs = served["model"], {}
    manifest = read_manifest(model) if Path(model).is_dir() else None
    store = folder / name
    for other in FAST_BACKENDS:  # one converted model per deployment: the current one
        shutil.rmtree(folder / other, ignore_errors=True)
    try:
        if manifest is None or not manifest.get("loader"):
            converted = convert(model, store)
            return name, str(converted.folder), f"{name} {precision} of the deployed model", {}
        if len(candidate.adapters) > 1:
            return "genlab", None, f"the {manifest.get('method')} model is read by genlab's engine only", {}
        source = candidate.model
        if candidate.adapters:
            shutil.rmtree(folder / "merged", ignore_errors=True)  # left by a step that was killed
            merged = merge_adapter_into_model(candidate.adapters[0], folder / "merged", model=candidate.model, store=lineage)
            source, sub_runs = str(merged.output), ({"merge": merged.run_id} if merged.run_id else {})
        converted = convert(source, store)
    finally:
        shutil.rmtree(folder / "merged", ignore_errors=True)
    why = (f"{name} {precision} of candidate {candidate.name!r}, quantised by {name} from its fp32 weights "
           f"(the optimise step's {manifest.get('method')} folder is read by genlab's engine only)")  # fmt: skip
    return name, str(converted.folder), why, sub_runs


def start_server(command: list[str], log: Path, url: str, timeout: float) -> int:
    """Start ``genlab serve`` detached, wait until ``/health`` answers; return its pid (stop it on failure)."""
    import importlib.util

    if importlib.util.find_spec("genlab.cli.serve") is None:
        raise GenlabError("this genlab has no `genlab serve` command to start; set deploy.start: false.")
    if _healthy(url):
        raise GenlabError(f"something already answers at {url}; stop it or choose another deploy.port.")
    with open(log, "ab") as output:
        process = subprocess.Popen(  # noqa: S603 - our own CLI, arguments from the validated recipe
            [sys.executable, "-m", "genlab", *command[1:]], stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise GenlabError(f"genlab serve exited with code {process.returncode} while starting; see {log}.")
        if _healthy(url):
            return process.pid
        time.sleep(0.5)
    process.terminate()
    raise GenlabError(f"genlab serve did not answer {url}/health within {timeout:.0f} s; see {log}.")


def _healthy(url: str) -> bool:
    import requests

    try:
        return requests.get(f"{url}/health", timeout=2).ok
    except requests.RequestException:
        return False


def server_answers(serve_file: Path) -> bool:
    """True when the server a previous deploy step started (``serve.json``) is still up and answering."""
    import json

    try:
        config = json.loads(serve_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(config.get("started")) and _healthy(str(config.get("url")))
