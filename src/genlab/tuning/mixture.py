"""Multi-task mixtures: training rows drawn from several tasks in set proportions.

Training on a mixture keeps a model's other skills while it learns a new one, and the mixing rate
decides how much each task pulls (Raffel et al. 2020, "Exploring the Limits of Transfer Learning with
a Unified Text-to-Text Transformer", arXiv:1910.10683, section 3.5.2). Here the rate is explicit: task
i with weight w_i gets

    n_i = floor(N * w_i / W) rows, W = sum of the weights,

and the N - sum(n_i) rows left by rounding down go one each to the tasks with the largest fractional
parts (the largest-remainder method), so the counts add up to N exactly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from genlab.errors import InvalidValueError
from genlab.tuning.features import FeatureSet


def mix_tasks(parts: Sequence[tuple[FeatureSet, float]], *, seed: int = 0, total: int | None = None) -> FeatureSet:
    """``total`` rows (default: all tasks' rows added up) drawn from ``(features, weight)`` tasks in
    proportion to their weights, shuffled together; the same seed gives the same rows in the same order.

    A task's rows are drawn without replacement while it has rows left, so a task is never repeated
    before it is used up; a task asked for more rows than it has gives every row once and the rest
    drawn with replacement. The result's ``dropped`` lists every task's dropped rows.
    """
    _check_parts(parts)
    sizes = [len(features) for features, _ in parts]
    total = sum(sizes) if total is None else total
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise InvalidValueError(f"total={total!r} is not allowed: the mixture needs a whole number of rows, 1 or more.")
    rng = random.Random(seed)
    counts = _rows_per_task([weight for _, weight in parts], total)
    chosen: list[tuple[int, int]] = []  # (task, row index in that task)
    for task, (size, count) in enumerate(zip(sizes, counts, strict=True)):
        chosen.extend((task, index) for index in _draw(rng, size, count))
    rng.shuffle(chosen)
    mixed = FeatureSet(dropped=[row_id for features, _ in parts for row_id in features.dropped])
    for task, index in chosen:
        mixed.append(*parts[task][0].row(index))
    return mixed


def _check_parts(parts: Sequence[tuple[FeatureSet, float]]) -> None:
    if not parts:
        raise InvalidValueError("parts=[] is not allowed: a mixture needs at least one task.")
    for number, (features, weight) in enumerate(parts, start=1):
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight) or weight <= 0:
            raise InvalidValueError(
                f"weight={weight!r} for task {number} is not allowed: mixture weights must be numbers greater than 0."
            )
        if len(features) == 0:
            raise InvalidValueError(f"task {number} of the mixture has no rows, so it cannot be sampled from.")


def _rows_per_task(weights: Sequence[float], total: int) -> list[int]:
    """Largest-remainder apportionment of ``total`` rows by weight (see the module docstring)."""
    weight_sum = sum(weights)
    quotas = [total * weight / weight_sum for weight in weights]
    counts = [math.floor(quota) for quota in quotas]
    by_remainder = sorted(range(len(weights)), key=lambda task: (-(quotas[task] - counts[task]), task))
    for task in by_remainder[: total - sum(counts)]:
        counts[task] += 1
    return counts


def _draw(rng: random.Random, size: int, count: int) -> list[int]:
    """``count`` row indices out of ``size``: without replacement up to ``size``, with replacement beyond."""
    if count <= size:
        return rng.sample(range(size), count)
    return rng.sample(range(size), size) + rng.choices(range(size), k=count - size)
