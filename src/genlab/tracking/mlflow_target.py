"""Open an MLflow tracking store and its experiment for genlab's runs, or say in one sentence why not.

MLflow is an optional extra (``pip install 'genlab[mlflow]'``: mlflow-skinny, and SQLAlchemy with
Alembic for its SQL stores), so it is imported here, when tracking is asked for, and its absence is
a :class:`TrackingUnavailableError` rather than an ImportError at start-up.

For a SQLite store the experiment's artifacts go beside the database (``mlartifacts/``, as
``mlflow server`` does), not into ``./mlruns`` under whatever folder the command ran in.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError
from genlab.tracking.config import TrackingConfig

SQLITE_PREFIX = "sqlite:///"
INSTALL_HINT = "pip install 'genlab[mlflow]' (mlflow-skinny, with SQLAlchemy and Alembic for SQL stores)"


class TrackingUnavailableError(GenlabError):
    """MLflow (or the SQL store's libraries) is not installed."""


class TrackingStoreError(GenlabError):
    """The MLflow store cannot be opened or used."""


@dataclass
class MlflowTarget:
    """An open MLflow client and the experiment genlab's runs go into."""

    client: Any  # mlflow.MlflowClient
    experiment_id: str
    uri: str


def sqlite_database(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the current folder, as MLflow reads it)."""
    if not uri.startswith(SQLITE_PREFIX):
        return None
    return Path(uri.removeprefix(SQLITE_PREFIX).split("?", 1)[0])


def open_mlflow(config: TrackingConfig) -> MlflowTarget:
    """The client for ``config.mlflow`` and the id of ``config.experiment`` (created when missing)."""
    missing = [name for name in ("mlflow", "sqlalchemy", "alembic") if importlib.util.find_spec(name) is None]
    database = sqlite_database(config.mlflow)
    if "mlflow" in missing or (database is not None and missing):
        raise TrackingUnavailableError(f"tracking into {config.mlflow} needs {', '.join(missing)}: {INSTALL_HINT}.")
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    artifact_location = None
    if database is not None:
        try:
            database.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise TrackingStoreError(f"cannot make the folder of {config.mlflow}: {error.strerror or error}.") from None
        artifact_location = (database.resolve().parent / "mlartifacts").as_uri()
    try:
        client = MlflowClient(tracking_uri=config.mlflow)
        experiment_id = _experiment_id(client, config.experiment, artifact_location)
    except MlflowException as error:
        raise TrackingStoreError(f"cannot use the MLflow store {config.mlflow}: {_first_line(error)}.") from None
    return MlflowTarget(client, experiment_id, config.mlflow)


def _experiment_id(client: Any, name: str, artifact_location: str | None) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return str(client.create_experiment(name, artifact_location=artifact_location))
        except MlflowException:  # another process made it between the look-up and here
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        raise TrackingStoreError(
            f"the MLflow experiment {name!r} is deleted: restore it in MLflow, or name another experiment."
        )
    return str(experiment.experiment_id)


def _first_line(error: Exception) -> str:
    message = str(getattr(error, "message", None) or error).strip()
    return (message.splitlines() or ["unknown error"])[0].rstrip(".")
