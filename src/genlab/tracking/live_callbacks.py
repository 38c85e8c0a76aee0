"""The Trainer callback that logs a lineage run's training live into the open tracking session.

``genlab.training.TrainerSession`` adds :func:`tracking_callbacks` to every Trainer it trains, so each
method built on a Trainer logs live with no code of its own; a custom Trainer outside genlab's methods
may pass a config to get a session of its own. The session itself is :mod:`genlab.tracking.live`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transformers import TrainerCallback

from genlab.lineage.run import Run
from genlab.tracking.config import TrackingConfig
from genlab.tracking.live import LINEAGE_METRIC_NAMES, LiveTracking, active_session


class MlflowLiveLogging(TrainerCallback):
    """Logs the Trainer's losses, learning rate and gradient norm to the run's MLflow run at its global step."""

    def __init__(self, session: LiveTracking, run: Run, metric_names: Mapping[str, str], *, owns_session: bool) -> None:
        self.session, self.run, self.metric_names = session, run, dict(metric_names)
        self.owns_session = owns_session  # a session of its own: synced when training ends
        self.mlflow_run_id: str | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.mlflow_run_id = self.session.start(self.run.id)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self.mlflow_run_id is None or not logs:
            return
        # Only what the lineage records (LineageLosses logs the same keys under the same names): the
        # Trainer's closing entry also holds a "train_loss" (the mean over the run) that is no curve point.
        values = {
            name: float(logs[key])
            for key, name in self.metric_names.items()
            if isinstance(logs.get(key), (int, float)) and not isinstance(logs.get(key), bool)
        }
        self.session.log(self.mlflow_run_id, values, state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.mlflow_run_id is not None and self.owns_session:
            self.session.close()


def tracking_callbacks(
    config: TrackingConfig | None, run: Run | None, *, metric_names: Mapping[str, str] = LINEAGE_METRIC_NAMES
) -> list[TrainerCallback]:
    """The callbacks that log ``run``'s training live: ``[]`` without a tracking config or session.

    Inside :func:`genlab.tracking.live.live_tracking` (a lifecycle, a CLI command) the callback joins that session, nested
    under its current step, unless ``config`` names another store. Outside, ``config`` gives it a
    session of its own. ``run`` is the lineage run being trained (None on other DDP ranks: rank 0
    logs); ``metric_names`` maps the Trainer's log keys to the names the lineage records them by.
    """
    if run is None:
        return []
    active = active_session()
    if active is not None and (config is None or config == active.config):
        return [MlflowLiveLogging(active, run, metric_names, owns_session=False)]
    if config is None:
        return []
    return [MlflowLiveLogging(LiveTracking(config, run.store), run, metric_names, owns_session=True)]
