"""PPO's checkpoints, and the Trainer callback protocol around its hand-written loop.

PPO is not a transformers ``Trainer`` (trl removed its PPOTrainer; :mod:`.algorithm` is genlab's),
but its loop speaks the Trainer's callback protocol, so the callbacks every other method takes work
here too: ``on_train_begin`` and ``on_train_end`` with ``model=`` the policy, and ``on_step_end``
after each PPO step, with a real ``TrainerState`` (``global_step``, ``max_steps``) and
``TrainerControl``. A callback that sets ``control.should_save`` gets a checkpoint written; one that
sets ``should_training_stop`` ends training after the step. genlab's Ctrl-C handling is one such
callback (:class:`genlab.training.callbacks.CheckpointOnInterrupt`): the first Ctrl-C finishes the
step, writes a checkpoint and raises :class:`~genlab.training.checkpoints.TrainingInterrupted`.

A checkpoint is ``checkpoint-<step>/`` holding ``ppo_state.pt`` (:meth:`PPOTrainer.state_dict`:
trainable weights, value head, optimiser, KL coefficient, step, prompt order) and, written last,
``trainer_state.json`` with the step statistics so far: the completeness marker
:mod:`genlab.training.checkpoints` reads, so a checkpoint cut short by a kill is never resumed from.
Sampling and minibatches are seeded by the step number, so a resumed run ends with the same weights
as an uninterrupted one. Written by hand: no library checkpoints a loop that is not a Trainer.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerControl, TrainerState

from genlab.alignment.ppo.algorithm import PPOStats, PPOTrainer
from genlab.atomic import atomic_write_text
from genlab.training.callbacks import CheckpointOnInterrupt
from genlab.training.checkpoints import TrainingInterrupted, checkpoint_to_start_from

STATE_FILE = "ppo_state.pt"
HISTORY_FILE = "trainer_state.json"  # the name genlab.training.checkpoints takes as "this checkpoint is complete"


def save_checkpoint(trainer: PPOTrainer, checkpoints: Path, history: Sequence[PPOStats]) -> Path:
    """Write ``checkpoint-<step>`` (the state first, the history last); older checkpoints are removed after."""
    folder = checkpoints / f"checkpoint-{trainer.steps_done}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    torch.save(trainer.state_dict(), folder / STATE_FILE)
    record = {"global_step": trainer.steps_done, "history": [stats.to_dict() for stats in history]}
    atomic_write_text(folder / HISTORY_FILE, json.dumps(record))
    for older in checkpoints.glob("checkpoint-*"):
        if older != folder and older.name.removeprefix("checkpoint-").isdigit():
            shutil.rmtree(older, ignore_errors=True)
    return folder


def load_checkpoint(trainer: PPOTrainer, checkpoint: Path) -> list[PPOStats]:
    """Put ``trainer`` in the state ``checkpoint`` holds; the step statistics up to it."""
    trainer.load_state_dict(torch.load(checkpoint / STATE_FILE, weights_only=True))
    record = json.loads((checkpoint / HISTORY_FILE).read_text(encoding="utf-8"))
    return [PPOStats(**stats) for stats in record["history"]]


class PpoCheckpoints:
    """Where one recipe's PPO checkpoints live, and training with them (see the module docstring)."""

    def __init__(self, folder: Path, *, name: str, resume: bool) -> None:
        self.folder = folder
        # Refused here, before any model loads: a resume with nothing to resume, a fresh start over an unfinished run.
        self.start_from = checkpoint_to_start_from(folder, resume, name)

    def train(
        self,
        trainer: PPOTrainer,
        prompts: Sequence[str],
        *,
        save_every: int,
        callbacks: Sequence[Any] = (),
        on_stats: Callable[[PPOStats], None] | None = None,
    ) -> list[PPOStats]:
        """Every PPO step of the recipe (those of the checkpoint resumed from included, first); raises
        TrainingInterrupted after a callback stops training (a checkpoint is written first)."""
        history = load_checkpoint(trainer, self.start_from) if self.start_from is not None else []
        stopper = CheckpointOnInterrupt()
        callbacks = [*callbacks, stopper]  # the stopper last: it sees a Ctrl-C sent by a callback before it
        state, control = TrainerState(max_steps=trainer.config.steps, global_step=trainer.steps_done), TrainerControl()
        for callback in callbacks:
            callback.on_train_begin(None, state, control, model=trainer.model)
        stopper.install()
        try:
            while trainer.steps_done < trainer.config.steps:
                stats = trainer.step(trainer.next_batch(prompts))
                history.append(stats)
                if on_stats is not None:
                    on_stats(stats)
                state.global_step = trainer.steps_done
                for callback in callbacks:
                    callback.on_step_end(None, state, control, model=trainer.model)
                if control.should_save or trainer.steps_done % save_every == 0:
                    save_checkpoint(trainer, self.folder, history)
                    control.should_save = False
                if control.should_training_stop and trainer.steps_done < trainer.config.steps:
                    raise TrainingInterrupted(
                        f"training stopped by Ctrl-C at step {trainer.steps_done}; a checkpoint is in {self.folder}: "
                        "run the same command with --resume to continue."
                    )
        finally:
            stopper.uninstall()
        for callback in callbacks:
            callback.on_train_end(None, state, control, model=trainer.model)
        return history

    def finish(self) -> None:
        """The run is complete and its adapter saved: its checkpoints are no longer needed."""
        shutil.rmtree(self.folder, ignore_errors=True)
