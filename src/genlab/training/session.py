"""One Hugging Face Trainer run of a method: callbacks, Ctrl-C checkpoint, resume, timing, loss history.

Every method built on ``transformers.Trainer`` or one of trl's trainers (fine-tuning, distillation,
DPO, the reward model, GRPO, RLOO, KTO, ORPO) builds its trainer with ``session.callbacks`` and
``session.arguments()`` and trains it with :meth:`TrainerSession.train`::

    session = TrainerSession(checkpoints, name=recipe.name, resume=options.resume, run=run,
                             progress=options.progress, callbacks=options.callbacks)
    trainer = DPOTrainer(..., args=DPOConfig(**session.arguments_for(recipe.training), ...), callbacks=session.callbacks)
    trained = session.train(trainer)   # raises TrainingInterrupted after a Ctrl-C (a checkpoint is written)
    ...save the output...
    session.finish()                   # the run is complete: its checkpoints go

What the session adds to the Trainer (which does the loop, checkpoints with optimizer/scheduler/RNG
state and exact resumption): the lineage losses, a progress bar, the caller's callbacks (tests),
live MLflow logging when the method runs in a tracking session (genlab.tracking), the first Ctrl-C as "finish the step, checkpoint, stop", the newest complete checkpoint to
resume from (cut-short ones removed; a fresh start over an unfinished run refused) and the loss
history in one shape for every method. Written by hand: these are genlab's policies on top of the
Trainer's callback API.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import PrinterCallback, ProgressCallback

from genlab.tracking.live_callbacks import tracking_callbacks
from genlab.training.callbacks import (
    CheckpointOnInterrupt,
    LineageLosses,
    LossProgressBar,
)
from genlab.training.checkpoints import (
    TrainingInterrupted,
    checkpoint_step,
    checkpoint_to_start_from,
)

# Trainer log keys -> the run's metric names; a trainer that logs more passes its own mapping.
LOSS_METRICS = {"loss": "train_loss", "eval_loss": "eval_loss", "learning_rate": "learning_rate", "grad_norm": "grad_norm"}


@dataclass
class TrainedRun:
    trainer: Any
    seconds: float  # wall time of this process's training (not of earlier, interrupted runs)
    steps: int  # the trainer's global step at the end
    steps_run: int  # steps trained by this process (after a resume: fewer than ``steps``)
    loss_history: list[dict[str, float]]

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / max(self.steps_run, 1)


def loss_history(log_history: list[dict[str, Any]], keep: Sequence[str] = ("loss", "eval_loss", "learning_rate")) -> list[dict[str, float]]:
    """The Trainer's log entries that hold any of ``keep``, reduced to those values and the step."""
    return [
        {"step": float(entry["step"]), **{k: float(entry[k]) for k in keep if k in entry}}
        for entry in log_history
        if "step" in entry and any(k in entry for k in keep)
    ]


def last_value(history: list[dict[str, float]], key: str) -> float:
    values = [entry[key] for entry in history if key in entry]
    return values[-1] if values else float("nan")


def checkpoint_arguments(
    checkpoints: Path, *, save_every: int, keep_checkpoints: int | None = None, log_every: int = 1, seed: int = 42
) -> dict[str, Any]:
    """TrainingArguments every method shares: checkpoints in ``checkpoints`` every ``save_every`` steps,
    logging, seeds, on CPU unless CUDA, no reporting to outside services, no tqdm of the Trainer's own."""
    import torch

    return {
        "output_dir": str(checkpoints),
        "save_strategy": "steps",
        "save_steps": save_every,
        "save_total_limit": keep_checkpoints,
        "logging_steps": log_every,
        "logging_first_step": True,
        "seed": seed,
        "data_seed": seed,
        "use_cpu": not torch.cuda.is_available(),
        "dataloader_num_workers": 0,
        "report_to": "none",
        "disable_tqdm": True,  # LossProgressBar shows the loss instead
    }


def trainer_arguments(checkpoints: Path, training: Any) -> dict[str, Any]:
    """:func:`checkpoint_arguments` and the schedule from a recipe's training section: the fields the
    fine-tuning, DPO and reward-model sections share (epochs, max_steps, batch_size, gradient_accumulation,
    learning_rate, warmup, save_every, log_every, seed; keep_checkpoints where the section has it)."""
    return {
        **checkpoint_arguments(
            checkpoints, save_every=training.save_every, keep_checkpoints=getattr(training, "keep_checkpoints", None),
            log_every=training.log_every, seed=training.seed,
        ),
        "num_train_epochs": training.epochs,
        "max_steps": training.max_steps,
        "per_device_train_batch_size": training.batch_size,
        "gradient_accumulation_steps": training.gradient_accumulation,
        "learning_rate": training.learning_rate,
        "warmup_steps": training.warmup,
    }  # fmt: skip


class TrainerSession:
    """A method's Trainer run; see the module docstring. ``run`` is the lineage run (None on other DDP ranks).

    ``start_from`` is the checkpoint training continues from (None: a fresh start); record it in the run's config.
    """

    def __init__(
        self,
        checkpoints: Path,
        *,
        name: str,
        resume: bool,
        run: Any = None,
        progress: bool = True,
        callbacks: Sequence[Any] = (),
        metric_names: Mapping[str, str] = LOSS_METRICS,
    ) -> None:
        self.checkpoints = checkpoints
        self.start_from = checkpoint_to_start_from(checkpoints, resume, name)
        self.metric_names = dict(metric_names)
        self.stopper = CheckpointOnInterrupt()
        self.lineage = LineageLosses(run, self.metric_names)
        self.callbacks: list[Any] = [self.stopper, self.lineage, *callbacks]
        if progress:
            self.callbacks.append(LossProgressBar())

    def record_into(self, run: Any) -> None:
        """Log the losses into ``run`` (a session made before its run, to record where it resumes from)."""
        self.lineage.run = run

    def arguments(self, *, save_every: int, keep_checkpoints: int | None = None, log_every: int = 1, seed: int = 42) -> dict[str, Any]:
        """The TrainingArguments every method shares: checkpoints here, every ``save_every`` steps, on CPU unless CUDA."""
        return checkpoint_arguments(self.checkpoints, save_every=save_every, keep_checkpoints=keep_checkpoints, log_every=log_every, seed=seed)

    def arguments_for(self, training: Any) -> dict[str, Any]:
        """:meth:`arguments` and the schedule, from a recipe's training section (see :func:`trainer_arguments`)."""
        return trainer_arguments(self.checkpoints, training)

    def train(self, trainer: Any) -> TrainedRun:
        """Train (from the newest complete checkpoint when resuming); raise TrainingInterrupted after Ctrl-C."""
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        for callback in tracking_callbacks(None, self.lineage.run, metric_names=self.metric_names):
            trainer.add_callback(callback)  # MLflow, live, when the method runs inside a tracking session
        self.stopper.install()
        start = time.perf_counter()
        try:
            trainer.train(resume_from_checkpoint=str(self.start_from) if self.start_from else None)
        finally:
            self.stopper.uninstall()
        seconds = time.perf_counter() - start
        if self.stopper.stopped_at is not None:
            raise TrainingInterrupted(
                f"training stopped by Ctrl-C at step {self.stopper.stopped_at}; a checkpoint is in {self.checkpoints}: "
                "run the same command with --resume to continue."
            )
        steps = int(trainer.state.global_step)
        history = loss_history(trainer.state.log_history, tuple(self.metric_names))
        return TrainedRun(trainer, seconds, steps, steps - checkpoint_step(self.start_from), history)

    def finish(self) -> None:
        """The run is complete and its output saved: its checkpoints are no longer needed."""
        shutil.rmtree(self.checkpoints, ignore_errors=True)
