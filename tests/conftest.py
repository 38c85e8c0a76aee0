"""Shared fixtures: an isolated GENLAB_HOME per test, one model store per session, shared data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = PROJECT_ROOT.parent / "shared" / "datasets"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session", autouse=True)
def model_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model store for the whole session, so the default pack is converted once.

    Set for the whole session (not per test) so module-scoped fixtures that load a model use it too.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):  # pytest -n: the workers share one store (conversion is file-locked)
        store = tmp_path_factory.getbasetemp().parent / "genlab-models"
        store.mkdir(exist_ok=True)
    else:
        store = tmp_path_factory.mktemp("genlab-models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENLAB_MODELS_DIR", str(store))
        patch.setenv("GENLAB_HOME", str(tmp_path_factory.mktemp("genlab-session-home")))
        patch.setenv("HF_HUB_OFFLINE", "1")  # no test may reach for a hub
        yield store


@pytest.fixture(autouse=True)
def genlab_home(tmp_path: Path, model_store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "genlab-home"
    monkeypatch.setenv("GENLAB_HOME", str(home))
    monkeypatch.setenv("GENLAB_MODELS_DIR", str(model_store))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    return home


def shared_file(relative: str) -> Path:
    """A file under ../shared/datasets; missing is a failure in CI and a skip elsewhere."""
    path = SHARED_DATASETS / relative
    if not path.is_file():
        message = f"shared dataset {path} is missing (it should sit beside the project in ../shared)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def dialogsum_dev() -> Path:
    return shared_file("dialogsum/dev.jsonl")


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m genlab ARGS` as a user would, with the test's environment."""
    return subprocess.run(
        [sys.executable, "-m", "genlab", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
