"""Per-row scores of the metrics that are means over rows, and the 95% interval of every aggregate.

The corpus ROUGE, exact match and toxicity figures are means over rows, so each row's own value is
kept (in the predictions file, under ``scores``) and resampled for the bootstrap interval
(:mod:`genlab.evaluation.bootstrap`); two runs on the same rows are compared pairwise on them.
Corpus BLEU and chrF are not means; their intervals come from sacrebleu's bootstrap. Maxima, length
statistics and timings get no interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from genlab.evaluation.bootstrap import Interval, bootstrap_interval
from genlab.evaluation.metrics import (
    exact_match,
    load_toxicity_scorer,
    rouge_per_example,
)
from genlab.evaluation.metrics.bleu import bleu_chrf_intervals

References = Sequence[str | Sequence[str]]
TOXIC_THRESHOLD = 0.5  # as genlab.evaluation.metrics.toxicity's default


def row_scores(
    names: Sequence[str], predictions: Sequence[str], references: References, options: dict[str, Any] | None = None
) -> list[dict[str, float]]:
    """For each row, its value of every mean-type score the metric families ``names`` produce."""
    options = options or {}
    rows: list[dict[str, float]] = [{} for _ in predictions]
    if "rouge" in names:
        for row, prediction, refs in zip(rows, predictions, references, strict=True):
            row.update(rouge_per_example(prediction, refs))
    if "exact_match" in names:
        for row, prediction, refs in zip(rows, predictions, references, strict=True):
            row.update(exact_match([prediction], [refs]))
    if "toxicity" in names:
        scorer = load_toxicity_scorer(options.get("toxicity_model") or "profanity-check", options.get("toxic_label"))
        for row, probability in zip(rows, scorer.score(list(predictions)), strict=True):
            row.update({"toxicity_mean": float(probability), "toxic_fraction": float(probability >= TOXIC_THRESHOLD)})
    return rows


def mean_intervals(rows: Sequence[dict[str, float]]) -> dict[str, Interval]:
    """The bootstrap interval of the mean of every score the rows carry (rows missing a score skip it)."""
    names = sorted({name for row in rows for name in row})
    return {name: bootstrap_interval([row[name] for row in rows if name in row]) for name in names}


def generation_intervals(
    names: Sequence[str], predictions: Sequence[str], references: References, rows: Sequence[dict[str, float]]
) -> dict[str, Interval]:
    """Intervals of a generation run: the per-row means, plus BLEU and chrF when ``bleu`` was asked."""
    intervals = mean_intervals(rows)
    if "bleu" in names:
        intervals.update(bleu_chrf_intervals(predictions, references))
    return intervals
