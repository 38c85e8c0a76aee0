"""Shared by the training tests: a Trainer callback that crashes training at a given step."""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback


class CrashAt(TrainerCallback):
    """Raise inside training at ``step``: a crash mid-run, after the checkpoints written before it."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            raise RuntimeError("simulated crash")
