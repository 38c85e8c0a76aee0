"""Resuming a lifecycle step's training where an earlier attempt of the same step stopped.

Every method names the folder where a run keeps its checkpoints until it completes
(:meth:`genlab.methods.Method.checkpoint_folder`). Before training, the step writes its cache key
there. When a rerun finds complete checkpoints under the same key, the earlier attempt was this very
step (same settings, same data, same model) and training resumes from the newest one, with the same
result as an uninterrupted run. Checkpoints under another key (or none) were left by settings that
changed, or by a run outside the lifecycle, and are removed so training starts over. A checkpoint
cut short by a kill has no ``trainer_state.json`` and does not count
(:func:`genlab.training.checkpoints.last_checkpoint`); the method's session removes it before resuming.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from genlab.atomic import atomic_write_text
from genlab.training.checkpoints import last_checkpoint

KEY_FILE = "lifecycle-key"


def resume_step_training(checkpoints: Path | None, key: str) -> bool:
    """Whether the step resumes from ``checkpoints`` (written by an earlier attempt under ``key``); marks them as the step's."""
    if checkpoints is None:  # a method that keeps none (a one-shot transform) always starts over
        return False
    key_file = checkpoints / KEY_FILE
    resume = last_checkpoint(checkpoints) is not None
    if resume and (not key_file.is_file() or key_file.read_text(encoding="utf-8").strip() != key):
        shutil.rmtree(checkpoints)  # from other settings or data: not this step's to continue
        resume = False
    checkpoints.mkdir(parents=True, exist_ok=True)
    atomic_write_text(key_file, key + "\n")
    return resume


def step_training_done(checkpoints: Path | None) -> None:
    """The step's training completed: its key goes (the method removes its own checkpoints)."""
    if checkpoints is not None:
        (checkpoints / KEY_FILE).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            checkpoints.rmdir()  # only if nothing else is left in it
