"""Paired comparison of two runs on the same rows: the difference of each per-row score with its
paired bootstrap interval (:func:`genlab.evaluation.bootstrap.paired_bootstrap_interval`).

Rows are matched by their id and must be the same rows (same ids, same inputs) in both runs; runs on
different row sets get no paired figure, and one sentence says why. A difference whose interval
contains 0 is reported as not distinguishable from noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from genlab.evaluation.bootstrap import paired_bootstrap_interval

NOISE = "not distinguishable from noise"


@dataclass(frozen=True)
class PairedDifference:
    """mean(other - baseline) over the shared rows, with its 95% paired bootstrap interval."""

    difference: float
    low: float
    high: float

    @property
    def noise(self) -> bool:
        return self.low <= 0.0 <= self.high

    @property
    def verdict(self) -> str:
        return NOISE if self.noise else ("better" if self.difference > 0 else "worse")

    def to_dict(self) -> dict[str, Any]:
        return {"difference": self.difference, "low": self.low, "high": self.high, "verdict": self.verdict}


def different_rows(baseline: Sequence[dict[str, Any]], other: Sequence[dict[str, Any]]) -> str | None:
    """Why two runs' rows cannot be paired (one sentence), or None when they are the same rows."""
    if not baseline or not other:
        return "a run has no predictions file with per-row scores, so no paired interval is computed."
    first = {row.get("id"): row.get("input") for row in baseline}
    second = {row.get("id"): row.get("input") for row in other}
    if len(first) != len(baseline) or len(second) != len(other):
        return "a run's predictions repeat a row id, so its rows cannot be paired."
    if first.keys() != second.keys():
        shared = len(first.keys() & second.keys())
        return (
            f"the runs were scored on different rows ({len(first)} and {len(second)} rows, {shared} in common), "
            "so no paired interval is computed: score both on the same rows."
        )
    changed = sum(first[key] != second[key] for key in first)
    if changed:
        return f"{changed} row(s) share an id but not their input, so the runs are not on the same rows."
    return None


def paired_differences(baseline: Sequence[dict[str, Any]], other: Sequence[dict[str, Any]]) -> dict[str, PairedDifference]:
    """For every per-row score both runs carry on every row: the paired difference (other - baseline)."""
    by_id = {row["id"]: row for row in other}
    names = set.intersection(*(set(row.get("scores") or {}) for row in [*baseline, *other]))
    differences = {}
    for name in sorted(names):
        first = [float(row["scores"][name]) for row in baseline]
        second = [float(by_id[row["id"]]["scores"][name]) for row in baseline]
        interval = paired_bootstrap_interval(first, second)
        differences[name] = PairedDifference(interval.value, interval.low, interval.high)
    return differences

