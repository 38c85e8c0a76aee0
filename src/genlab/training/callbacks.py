"""Trainer callbacks: a progress bar with the loss, losses into lineage, and Ctrl-C as "checkpoint and stop".

They plug into transformers' ``Trainer`` (its callback API is the extension point it offers); nothing
here changes how training computes.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

from transformers import TrainerCallback


class LossProgressBar(TrainerCallback):
    """One tqdm bar on stderr: steps done, and the last training and validation loss."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.postfix: dict[str, str] = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from tqdm.auto import tqdm

        if state.is_world_process_zero:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="training", unit="step", file=sys.stderr)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self.bar is None or not logs:
            return
        for key, label in (("loss", "loss"), ("eval_loss", "val_loss")):
            if key in logs:
                self.postfix[label] = f"{logs[key]:.4f}"
        self.bar.set_postfix(self.postfix, refresh=True)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class LineageLosses(TrainerCallback):
    """Every logged loss, learning rate and validation loss, with its step, into the run's metrics."""

    NAMES = {"loss": "train_loss", "eval_loss": "eval_loss", "learning_rate": "learning_rate", "grad_norm": "grad_norm"}

    def __init__(self, run: Any, names: dict[str, str] | None = None) -> None:
        self.run = run
        if names is not None:  # a trainer's own logged names (trl's rewards/accuracies, ...) -> the run's metric names
            self.NAMES = names

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self.run is None or not logs or not state.is_world_process_zero:
            return
        for key, name in self.NAMES.items():
            if key in logs:
                self.run.log_metric(name, float(logs[key]), step=state.global_step)


class CheckpointOnInterrupt(TrainerCallback):
    """The first Ctrl-C (SIGINT) finishes the current step, writes a checkpoint and stops training.

    A second Ctrl-C interrupts at once, as usual. Install with :meth:`installed` around training.
    """

    def __init__(self) -> None:
        self.requested = False
        self.stopped_at: int | None = None
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupt: finishing this step and writing a checkpoint (Ctrl-C again to quit now)", file=sys.stderr)

    def install(self) -> None:
        import threading

        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._any_rank_requested():
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step

    def _any_rank_requested(self) -> bool:
        """Under DDP every rank must stop at the same step, or the others wait forever for its gradients."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self.requested
        import torch

        flag = torch.tensor([1 if self.requested else 0])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        self.requested = bool(flag.item())
        return self.requested
