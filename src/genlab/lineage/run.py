"""A run being recorded: ``with record_run("demo", config) as run: ...``.

The run row is written before the work starts; leaving the block marks it completed, and an
exception (or Ctrl-C) marks it failed with the error before the exception goes on. Outputs are
recorded with :meth:`Run.log_artifact` after they are written (atomically) to their final path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from genlab.home import runs_dir
from genlab.lineage.records import ArtifactRecord
from genlab.lineage.store import LineageStore


class Run:
    def __init__(self, store: LineageStore, run_id: str) -> None:
        self.store = store
        self.id = run_id

    @property
    def dir(self) -> Path:
        """A folder of this run's own for the files it writes."""
        path = runs_dir() / self.id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def use(self, path: str | Path, kind: str, metadata: dict[str, Any] | None = None) -> ArtifactRecord:
        """Record that this run read ``path`` (a dataset, a base model, an adapter)."""
        artifact = self.store.register_artifact(path, kind, metadata)
        self.store.link(("artifact", artifact.id), ("run", self.id), "input")
        return artifact

    def use_artifact(self, artifact: ArtifactRecord) -> None:
        self.store.link(("artifact", artifact.id), ("run", self.id), "input")

    def log_artifact(self, path: str | Path, kind: str, metadata: dict[str, Any] | None = None) -> ArtifactRecord:
        """Record that this run wrote ``path``; write it completely (atomically) first."""
        artifact = self.store.register_artifact(path, kind, metadata)
        self.store.link(("run", self.id), ("artifact", artifact.id), "output")
        return artifact

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        self.store.log_metric(self.id, name, value, step)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for name, value in metrics.items():
            self.log_metric(name, value, step)

    def add_child(self, child: Run) -> None:
        self.store.link(("run", self.id), ("run", child.id), "child")


@contextlib.contextmanager
def record_run(
    kind: str, config: dict[str, Any] | None = None, *, store: LineageStore | None = None
) -> Iterator[Run]:
    own_store = store is None
    store = store or LineageStore()
    run = Run(store, store.start_run(kind, config))
    try:
        yield run
    except BaseException as error:
        reason = "interrupted by the user" if isinstance(error, KeyboardInterrupt) else f"{type(error).__name__}: {error}"
        store.finish_run(run.id, error=reason)
        raise
    else:
        store.finish_run(run.id)
    finally:
        if own_store:
            store.close()
