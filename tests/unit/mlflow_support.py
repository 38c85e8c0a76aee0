"""A fresh MLflow SQLite store for a test module, copied from one migrated database per test session.

Creating an MLflow database runs its schema migrations (several seconds on a busy 2-core machine);
copying a made one takes milliseconds. Under pytest-xdist the workers share the template (made once,
under a file lock), as they share the model store.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient


def fresh_mlflow_uri(tmp_path_factory: pytest.TempPathFactory, name: str) -> str:
    """``sqlite:///...`` of a new, empty, fully migrated MLflow store of this caller's own."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    template = shared / "mlflow-template.db"
    with open(shared / "mlflow-template.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not template.exists():
            making = shared / f"mlflow-template-{os.getpid()}.db"
            MlflowClient(tracking_uri=f"sqlite:///{making}").search_experiments()  # runs the migrations
            os.replace(making, template)
    database = Path(tmp_path_factory.mktemp(name)) / "mlflow.db"
    shutil.copyfile(template, database)
    return f"sqlite:///{database}"
