"""Counting a model's trainable and total parameters (a tied weight counts once)."""

from __future__ import annotations

from typing import Any


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts; a tied weight counts once."""
    seen: set[int] = set()
    trainable = total = 0
    for parameter in model.parameters():
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        total += parameter.numel()
        if parameter.requires_grad:
            trainable += parameter.numel()
    return trainable, total
