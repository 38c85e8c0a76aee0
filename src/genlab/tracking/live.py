"""Live tracking while training: each logged loss goes to the run's MLflow run as the Trainer logs it,
and a lifecycle is a parent MLflow run with its steps nested.

- :func:`live_tracking` opens a session for a whole command: ``Method.run`` opens one for a recipe
  with ``tracking:`` (every method: fine-tuning, alignment, distillation), the lifecycle runner one
  for a lifecycle recipe with it. The runs it starts nest under :meth:`LiveTracking.nested` blocks,
  and on leaving it every run it touched is synced once more from the lineage store (final status,
  the scores computed after training, output hashes).
- :func:`genlab.tracking.live_callbacks.tracking_callbacks` gives the Trainer callbacks that log a
  lineage run's training into the open session (a module of its own: it subclasses transformers'
  ``TrainerCallback``, and this one is imported by every method's ``run`` and by the CLI, which must
  start without loading transformers).

The MLflow run of a lineage run is the one ``genlab runs export`` finds by the ``genlab.run_id`` tag,
so exporting after live logging updates the same run; points logged live are not logged again.

Why not transformers' own ``MLflowCallback``: it is configured only by environment variables and by
MLflow's process-wide fluent state (the global tracking URI and active-run stack). So it cannot tag
its run with the genlab run id (an export would then make a second run of the same training); a
training that raises leaves its fluent run active, and the next training in the same process (the
lifecycle's next candidate) logs into that stale run; and it logs the Trainer's key names (``loss``)
where the lineage says ``train_loss``, so the same curve would show twice. This callback uses an
explicit ``MlflowClient``, the exporter's run mapping and the lineage's metric names.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from genlab.lineage.store import LineageStore
from genlab.tracking.config import TrackingConfig
from genlab.tracking.lineage_mapping import export_order
from genlab.tracking.mlflow_export import MlflowMirror
from genlab.tracking.mlflow_target import open_mlflow

# The Trainer's log keys under the names genlab.training's LineageLosses records them by, so a point
# logged live and the same point exported later from the lineage store are recognised as one.
LINEAGE_METRIC_NAMES = {"loss": "train_loss", "eval_loss": "eval_loss", "learning_rate": "learning_rate", "grad_norm": "grad_norm"}

_ACTIVE: ContextVar[LiveTracking | None] = ContextVar("genlab_live_tracking", default=None)


class LiveTracking:
    """One MLflow target for a command; opened at the first run it tracks."""

    def __init__(self, config: TrackingConfig, store: LineageStore) -> None:
        self.config, self.store = config, store
        self._mirror: MlflowMirror | None = None
        self._parents: list[str] = []  # lineage runs of the open nested() blocks, innermost last
        self.touched: list[str] = []  # lineage runs this session started, in order
        self.broken: str | None = None  # why live logging stopped (the training goes on)

    @property
    def mirror(self) -> MlflowMirror:
        if self._mirror is None:
            self._mirror = MlflowMirror(open_mlflow(self.config), self.store)
        return self._mirror

    def open(self) -> None:
        """Open the store now: a wrong URI or a missing extra fails before any work starts."""
        _ = self.mirror

    def start(self, run_id: str) -> str | None:
        """Create (or find) the MLflow run of ``run_id``, nested under the innermost open block; its id."""
        parent = self._parents[-1] if self._parents else None
        if run_id not in self.touched:
            self.touched.append(run_id)
        exported = self._guarded(lambda: self.mirror.upsert(run_id, parent=parent))
        return exported.mlflow_run_id if exported is not None else None

    @contextlib.contextmanager
    def nested(self, run_id: str) -> Iterator[None]:
        """``run_id``'s MLflow run is the parent of the runs started inside; synced with them on leaving."""
        self.start(run_id)
        self._parents.append(run_id)
        try:
            yield
        finally:
            self._parents.pop()
            self.sync([run_id])

    def log(self, mlflow_run_id: str, values: dict[str, float], step: int) -> None:
        """Training metrics as they are logged (already under the lineage's names)."""
        if values:
            self._guarded(lambda: self.mirror.log_live_metrics(mlflow_run_id, values, step))

    def sync(self, run_ids: list[str]) -> None:
        """Bring the MLflow runs of ``run_ids`` and the runs linked below them up to the lineage store."""

        def upsert_all() -> None:
            for run_id in export_order(self.store, run_ids):
                self.mirror.upsert(run_id)  # nested as the lineage links say by now; a run started nested keeps its parent

        self._guarded(upsert_all)

    def close(self) -> None:
        if self.touched:
            self.sync(self.touched)

    def _guarded(self, action: Callable[[], Any]) -> Any:
        """``action()``; once the store failed, nothing more. A failure is said once and the work goes on."""
        if self.broken is not None:
            return None
        try:
            return action()
        except Exception as error:  # noqa: BLE001 - tracking must not end a training; the lineage store has every point
            self.broken = " ".join(f"{type(error).__name__}: {error}".split())[:300]
            print(
                f"warning: MLflow tracking stopped ({self.broken}); the lineage store keeps everything: "
                f"`genlab runs export --mlflow {self.config.mlflow}` sends it later.",
                file=sys.stderr,
            )
            return None


@contextlib.contextmanager
def live_tracking(config: TrackingConfig | None, store: LineageStore) -> Iterator[LiveTracking | None]:
    """A tracking session for one command or method run; see the module docstring.

    Without ``config``, or with the config of the session already open (a lifecycle's step running a
    method), the open session (or None) goes on: runs nest in it rather than in a second one.
    """
    active = _ACTIVE.get()
    if config is None or (active is not None and config == active.config):
        yield active
        return
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun's other ranks: rank 0 records and tracks
        yield None
        return
    session = LiveTracking(config, store)
    session.open()
    token = _ACTIVE.set(session)
    try:
        yield session
    finally:
        _ACTIVE.reset(token)
        session.close()


@contextlib.contextmanager
def nested_run(run_id: str) -> Iterator[None]:
    """Inside :func:`live_tracking`: ``run_id`` is a parent MLflow run for what starts in the block
    (a lifecycle pass, then each step). Outside one, nothing: callers need not know if they track."""
    session = _ACTIVE.get()
    if session is None:
        yield
        return
    with session.nested(run_id):
        yield


def active_session() -> LiveTracking | None:
    """The session :func:`live_tracking` opened in this context, or None."""
    return _ACTIVE.get()
