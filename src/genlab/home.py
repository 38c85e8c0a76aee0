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

from genlab.errors import GenlabError


class HomeError(GenlabError):
    """genlab's state folder (or one of its parts) cannot be made or used."""


def genlab_home() -> Path:
    variable = os.environ.get("GENLAB_HOME")
    home = Path(variable or Path.home() / ".genlab").expanduser()
    return _ensure_folder(home, "GENLAB_HOME" if variable else "genlab's home folder")


def models_dir() -> Path:
    override = os.environ.get("GENLAB_MODELS_DIR")
    if override:
        return _ensure_folder(Path(override).expanduser(), "GENLAB_MODELS_DIR")
    return _subdir("models")


def runs_dir() -> Path:
    return _subdir("runs")


def cache_dir() -> Path:
    return _subdir("cache")


def _subdir(name: str) -> Path:
    return _ensure_folder(genlab_home() / name, f"genlab's {name} folder")


def _ensure_folder(path: Path, what: str) -> Path:
    """``path``, created if missing; one sentence when it is a file or cannot be made."""
    if path.exists() and not path.is_dir():
        raise HomeError(f"{what} {path} is a file, not a folder: point it at a folder (it is made if missing).")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise HomeError(f"{what} {path} cannot be made: {error.strerror or error}.") from None
    return path
