"""Where genlab keeps its state: ``$GENLAB_HOME`` (default ``~/.genlab``).

    $GENLAB_HOME/
      lineage.sqlite      runs, artifacts, metrics, links (genlab.lineage)
      models/<pack>/      packs converted once to safetensors (genlab.models.packs)
      runs/<run id>/      files a run writes (summaries, reports, checkpoints)
      cache/              small derived facts, e.g. measured parameter counts

``$GENLAB_MODELS_DIR`` moves the model store elsewhere (a shared disk, or one store for many homes).
"""

from __future__ import annotations

import os
from pathlib import Path


def genlab_home() -> Path:
    home = Path(os.environ.get("GENLAB_HOME") or Path.home() / ".genlab").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def models_dir() -> Path:
    override = os.environ.get("GENLAB_MODELS_DIR")
    if override:
        path = Path(override).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return path
    return _subdir("models")


def runs_dir() -> Path:
    return _subdir("runs")


def cache_dir() -> Path:
    return _subdir("cache")


def _subdir(name: str) -> Path:
    path = genlab_home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path
