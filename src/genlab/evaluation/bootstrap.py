"""95% bootstrap confidence intervals (Efron & Tibshirani, 1993) for scores that are means over rows.

A corpus score that is the mean of per-row values (ROUGE F-measures, accuracy, toxicity, exact match)
is resampled with replacement: B = 1,000 resamples of the n rows, each giving a mean; the interval is
the 2.5th and 97.5th percentiles of those B means (the percentile method; BCa misbehaves on
constant rows such as an all-correct accuracy). The resampling is scipy's ``scipy.stats.bootstrap``
with a generator seeded by ``seed``, so the same rows always give the same interval.

Paired bootstrap (Koehn, 2004, "Statistical Significance Tests for Machine Translation Evaluation"):
two runs scored on the *same* rows are resampled together, so the question "is B better than A?" is
answered on the per-row differences d_i = b_i - a_i. For a mean, resampling the pairs and taking
mean(b*) - mean(a*) is exactly resampling d and taking mean(d*), which is what is done here. When
the interval of mean(d) contains 0 the difference is not distinguishable from noise.

Corpus BLEU and chrF are not means over rows; their intervals come from sacrebleu's own bootstrap
(``corpus_score(..., n_bootstrap=1000)``, :mod:`genlab.evaluation.metrics.bleu`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from genlab.errors import InvalidValueError

RESAMPLES = 1000
CONFIDENCE = 0.95
SEED = 0


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95% bootstrap interval."""

    value: float  # the statistic on the rows as they are (the mean)
    low: float
    high: float

    @property
    def spans_zero(self) -> bool:
        return self.low <= 0.0 <= self.high

    def to_list(self) -> list[float]:
        return [self.low, self.high]


def bootstrap_interval(values: Sequence[float], *, resamples: int = RESAMPLES, seed: int = SEED) -> Interval:
    """The mean of ``values`` with its percentile bootstrap interval (``resamples`` resamples, seeded)."""
    import numpy as np
    from scipy.stats import bootstrap

    data = np.asarray(list(values), dtype=float)
    if data.size == 0:
        raise InvalidValueError("a bootstrap interval needs at least one row.")
    if resamples < 1:
        raise InvalidValueError(f"resamples={resamples!r} is not allowed: use 1 or more.")
    mean = float(data.mean())
    if data.size == 1 or np.all(data == data[0]):  # every resample has the same mean
        return Interval(mean, mean, mean)
    result = bootstrap(
        (data,), np.mean, n_resamples=resamples, confidence_level=CONFIDENCE, method="percentile",
        vectorized=True, rng=np.random.default_rng(seed),
    )  # fmt: skip
    interval = result.confidence_interval
    return Interval(mean, float(interval.low), float(interval.high))


def paired_bootstrap_interval(
    baseline: Sequence[float], other: Sequence[float], *, resamples: int = RESAMPLES, seed: int = SEED
) -> Interval:
    """mean(other - baseline) with its paired bootstrap interval; both lists score the same rows in the same order."""
    if len(baseline) != len(other):
        raise InvalidValueError(
            f"a paired interval needs the same rows in both runs, but one has {len(baseline)} and the other {len(other)}."
        )
    return bootstrap_interval([b - a for a, b in zip(baseline, other, strict=True)], resamples=resamples, seed=seed)
