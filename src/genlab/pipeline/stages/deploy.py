"""Deploy: the serve configuration of the chosen artifact, and optionally the server itself.

``serve.json`` holds what ``genlab serve`` needs (``model``, ``adapters`` as served name -> folder,
``host``, ``port``) and the exact command line. The artifact is the optimised model when the recipe
optimises (``deploy.artifact: optimized``), else the chosen candidate: its model, plus its adapter
served under the candidate's name. With ``start: true`` the step starts that command in the
background (its output in ``serve.log``), waits for ``/health``, and records the pid and URL; such a
step is reused only while that server still answers (a server is not a file that stays put), and it
refuses to start a second server on a port something already answers on.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from genlab.atomic import atomic_write_json
from genlab.errors import GenlabError
from genlab.pipeline.candidates import Candidate, candidate_inputs, resolve_candidate
from genlab.pipeline.step import StepContext, StepOutcome
from genlab.pipeline.workspace import StepFile


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
        if self._serves_optimised(ctx):
            return {"model": StepFile(ctx.output("optimise", "model"), "model", "optimised model")}
        return candidate_inputs(ctx, self._candidate(ctx))

    def _serves_optimised(self, ctx: StepContext) -> bool:
        return ctx.recipe.deploy is not None and ctx.recipe.deploy.artifact == "optimized" and "optimise" in ctx.states

    def _candidate(self, ctx: StepContext) -> Candidate:
        assert ctx.recipe.deploy is not None
        return resolve_candidate(ctx, ctx.recipe.deploy.candidate)

    def run(self, ctx: StepContext, run: Any) -> StepOutcome:
        settings = ctx.recipe.deploy
        assert settings is not None
        if self._serves_optimised(ctx):
            served = {"model": str(ctx.output("optimise", "model")), "adapters": {}, "candidate": ctx.state("optimise").summary["candidate"]}
        else:
            served = self._candidate_config(self._candidate(ctx))
        command = ["genlab", "serve", "--model", served["model"]]
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
        return StepOutcome(outputs={"serve": StepFile(serve_file, "deployment", "serve configuration")}, summary=config)

    def _candidate_config(self, candidate: Candidate) -> dict[str, Any]:
        if len(candidate.adapters) > 1:
            raise GenlabError(
                f"candidate {candidate.name!r} stacks {len(candidate.adapters)} adapters, which genlab serve cannot "
                "apply together: add an optimise step (it merges them) or deploy another candidate."
            )
        adapters = {candidate.name: str(candidate.adapters[0])} if candidate.adapters else {}
        return {"model": candidate.model, "adapters": adapters, "candidate": candidate.name}


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
