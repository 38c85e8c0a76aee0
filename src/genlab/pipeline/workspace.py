"""Where a lifecycle keeps its steps' results between runs, and how a step knows it can be reused.

    $GENLAB_HOME/lifecycle/<recipe name>/
      .lock                  held while `genlab run` works on this recipe
      <step>/state.json      the step's cache key, lineage run, outputs (path, kind, SHA-256) and summary
      <step>/...             the files the step wrote

A step's cache key is the SHA-256 of its name, its settings (canonical JSON) and the content hashes
of its inputs (:mod:`genlab.lineage.hashing`, cached by size and modification time in the lineage
store). A step is reused when its ``state.json`` holds the same key and every output it lists is
still there with the content it had. ``state.json`` is written last, atomically, and removed before
a step runs again, so a step that crashed never looks finished.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genlab.atomic import atomic_write_json
from genlab.errors import GenlabError
from genlab.home import genlab_home

STATE_FILE = "state.json"


@dataclass(frozen=True)
class StepFile:
    """A file or folder a step reads or writes, as lineage records it."""

    path: Path
    kind: str  # the lineage artifact kind: dataset, model, adapter, predictions, comparison, deployment, ...
    label: str = ""  # what the lineage graph calls it


@dataclass
class StepState:
    """What a finished step left: enough to reuse it, to feed later steps and to report it."""

    step: str
    key: str
    run_id: str
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> path, kind, label, sha256
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    sub_runs: dict[str, str] = field(default_factory=dict)  # label -> lineage run id of a library run inside the step
    seconds: float = 0.0

    def output(self, name: str) -> Path:
        return Path(self.outputs[name]["path"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepState:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def cache_key(step: str, settings: Any, input_hashes: Mapping[str, str]) -> str:
    """SHA-256 of the step's name, settings and input content hashes (order of keys does not matter)."""
    payload = json.dumps({"step": step, "settings": settings, "inputs": dict(input_hashes)}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class Workspace:
    """The folder of one lifecycle recipe: a subfolder and a state file per step."""

    def __init__(self, recipe_name: str, root: Path | None = None) -> None:
        self.root = (root or genlab_home() / "lifecycle") / recipe_name
        self.root.mkdir(parents=True, exist_ok=True)

    def step_dir(self, step: str) -> Path:
        path = self.root / step
        path.mkdir(parents=True, exist_ok=True)
        return path

    def read_state(self, step: str) -> StepState | None:
        path = self.root / step / STATE_FILE
        if not path.is_file():
            return None
        try:
            return StepState.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None  # unreadable: the step runs again

    def write_state(self, state: StepState) -> None:
        atomic_write_json(self.step_dir(state.step) / STATE_FILE, state.to_dict())

    def clear_step(self, step: str) -> Path:
        """Forget a step's state and files before it runs again; return its (empty) folder."""
        folder = self.root / step
        (folder / STATE_FILE).unlink(missing_ok=True)  # first, so a crash below never leaves a "finished" step
        if folder.exists():
            shutil.rmtree(folder)
        return self.step_dir(step)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the recipe's lock: two `genlab run`s of one recipe would overwrite each other's steps."""
        path = self.root / ".lock"
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise GenlabError(
                    f"lifecycle {self.root.name!r} is being run by {holder} already; wait for it to finish."
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                fcntl.flock(handle, fcntl.LOCK_UN)


def outputs_intact(state: StepState, content_hash: Any) -> bool:
    """True when every output of ``state`` exists with the SHA-256 it was recorded with."""
    for record in state.outputs.values():
        path = Path(record["path"])
        if not path.exists() or content_hash(path) != record.get("sha256"):
            return False
    return True
