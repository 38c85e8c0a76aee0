"""A method's Trainer checkpoints: the newest complete one, cut-short ones removed, resume or refuse.

The Trainer writes ``checkpoint-<step>/`` with the optimizer, scheduler and RNG states, and
``trainer_state.json`` last: a folder without a readable one was cut short (a kill during the write)
and is never a place to start from. A fresh run refuses to start over an unfinished run's
checkpoints rather than delete them; ``resume`` with nothing to resume is refused too.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from pathlib import Path

from genlab.errors import GenlabError
from genlab.home import genlab_home


class TrainingInterrupted(GenlabError):
    exit_code = 130


class CheckpointError(GenlabError):
    pass


def checkpoints_dir(*where: str) -> Path:
    """``$GENLAB_HOME/<where...>/checkpoints``: where a method's run keeps its checkpoints until it completes.

    Each method folder names its own (``checkpoints_dir("dpo", recipe.name)``) in one function its
    training and its :class:`genlab.methods.Method` (``checkpoints=``) both use.
    """
    return genlab_home().joinpath(*where, "checkpoints")


def _checkpoints(folder: Path) -> list[tuple[Path, bool]]:
    """The ``checkpoint-<step>`` folders in step order, each with whether its write completed."""
    found = []
    for checkpoint in folder.glob("checkpoint-*") if folder.is_dir() else []:
        step = checkpoint.name.removeprefix("checkpoint-")
        if not (checkpoint.is_dir() and step.isdigit()):
            continue
        try:
            json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
            complete = True
        except (OSError, ValueError):
            complete = False
        found.append((int(step), checkpoint, complete))
    return [(checkpoint, complete) for _, checkpoint, complete in sorted(found)]


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint in ``folder``, if any."""
    complete = [checkpoint for checkpoint, done in _checkpoints(folder) if done]
    return complete[-1] if complete else None


def drop_incomplete_checkpoints(folder: Path) -> list[Path]:
    """Remove checkpoint folders whose write was cut short; return them."""
    dropped = [checkpoint for checkpoint, done in _checkpoints(folder) if not done]
    for checkpoint in dropped:
        shutil.rmtree(checkpoint, ignore_errors=True)
    return dropped


def checkpoint_to_start_from(checkpoints: Path, resume: bool, name: str) -> Path | None:
    """The checkpoint to resume from (None: start fresh); refuses a resume with nothing to resume and a
    fresh start over an unfinished run's checkpoints. Cut-short checkpoints are removed first."""
    for dropped in drop_incomplete_checkpoints(checkpoints):
        print(f"removed {dropped.name}: its write was cut short (no readable trainer_state.json)", file=sys.stderr)
    existing = last_checkpoint(checkpoints)
    if resume and existing is None:
        raise CheckpointError(f"there is nothing to resume for recipe {name!r}: {checkpoints} holds no checkpoint.")
    if not resume and existing is not None:
        raise CheckpointError(
            f"recipe {name!r} has checkpoints from an unfinished run in {checkpoints}: pass --resume to continue it, "
            "or delete that folder to start over."
        )
    return existing


def checkpoint_step(checkpoint: Path | None) -> int:
    """The step a checkpoint folder was written at (0 for none)."""
    if checkpoint is None:
        return 0
    with contextlib.suppress(ValueError):
        return int(checkpoint.name.rsplit("-", 1)[-1])
    return 0
