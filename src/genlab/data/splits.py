"""Deterministic, seeded train/test and train/validation/test splits of a list of Examples.

The row indices are shuffled by ``random.Random(seed)`` (never the global random state), so a seed
gives the same split on every machine and run; the parts are disjoint and together hold every row,
and each part keeps the source order. A size is a fraction of all rows (``0 < f < 1``, rounded to
the nearest row) or a row count (an int); every part must end up with at least one row.

The first rows of one shuffle become the test part, then the validation part, so for the same seed
and test size :func:`train_validation_test` holds out exactly the test rows :func:`split_examples` does.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from genlab.data.example import Example
from genlab.errors import InvalidValueError


def split_examples(
    examples: Sequence[Example], *, test_size: float | int, seed: int = 42
) -> tuple[list[Example], list[Example]]:
    """Split ``examples`` into ``(train, test)`` with ``test_size`` rows (a fraction or a count) in test."""
    total = len(examples)
    n_test = _part_size("test_size", test_size, total)
    _check_leaves_training_rows(total, n_test, f"test_size={test_size!r}")
    test_rows, train_rows = _shuffled_parts(total, seed, [n_test])
    return _pick(examples, train_rows), _pick(examples, test_rows)


def train_validation_test(
    examples: Sequence[Example], *, validation: float | int, test: float | int, seed: int = 42
) -> tuple[list[Example], list[Example], list[Example]]:
    """Split ``examples`` into ``(train, validation, test)``; both sizes are fractions of all rows or counts."""
    total = len(examples)
    n_validation = _part_size("validation", validation, total)
    n_test = _part_size("test", test, total)
    _check_leaves_training_rows(total, n_validation + n_test, f"validation={validation!r} with test={test!r}")
    test_rows, validation_rows, train_rows = _shuffled_parts(total, seed, [n_test, n_validation])
    return _pick(examples, train_rows), _pick(examples, validation_rows), _pick(examples, test_rows)


def _part_size(name: str, size: float | int, total: int) -> int:
    """The number of rows ``size`` asks for out of ``total``; InvalidValueError if it is not 1 to total-1."""
    if total < 2:
        raise InvalidValueError(f"cannot split {total} example(s): a split needs at least 2 rows.")
    if isinstance(size, bool) or not isinstance(size, (int, float)):
        raise InvalidValueError(f"{name}={size!r} is not allowed: give a fraction between 0 and 1 or a row count.")
    if isinstance(size, float):
        if not 0 < size < 1:
            raise InvalidValueError(
                f"{name}={size!r} is not allowed: a fraction must be between 0 and 1 (exclusive); "
                "give an int for a row count."
            )
        count = round(size * total)
        if not 1 <= count < total:
            raise InvalidValueError(
                f"{name}={size!r} is not allowed: it gives {count} of {total} rows, "
                f"and a part needs 1 to {total - 1}."
            )
        return count
    if not 1 <= size < total:
        raise InvalidValueError(
            f"{name}={size!r} is not allowed: a row count must be from 1 to {total - 1} for {total} rows."
        )
    return size


def _check_leaves_training_rows(total: int, held_out: int, asked: str) -> None:
    if held_out >= total:
        raise InvalidValueError(
            f"{asked} is not allowed: it holds out {held_out} of {total} rows and leaves none to train on."
        )


def _shuffled_parts(total: int, seed: int, sizes: list[int]) -> list[list[int]]:
    """Shuffle 0..total-1 with ``seed`` and cut it into parts of ``sizes`` plus the rest, each sorted."""
    order = list(range(total))
    random.Random(seed).shuffle(order)
    parts, start = [], 0
    for size in sizes:
        parts.append(sorted(order[start : start + size]))
        start += size
    parts.append(sorted(order[start:]))
    return parts


def _pick(examples: Sequence[Example], rows: list[int]) -> list[Example]:
    return [examples[row] for row in rows]
