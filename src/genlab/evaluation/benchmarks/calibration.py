"""Expected calibration error (Guo et al., 2017, "On Calibration of Modern Neural Networks", ICML).

A model is calibrated when, among the answers it gives with confidence p, a fraction p is right.
Confidences (here: the probability of the predicted choice) are grouped into M equal-width bins
I_m = ((m-1)/M, m/M] (a confidence of exactly 0 goes to the first bin). For the set B_m of
predictions whose confidence falls in I_m:

    acc(B_m)  = (1/|B_m|) Σ_{i in B_m} 1[ŷ_i = y_i]
    conf(B_m) = (1/|B_m|) Σ_{i in B_m} p̂_i
    ECE       = Σ_{m=1..M} |B_m|/n · |acc(B_m) − conf(B_m)|

ECE is 0 for a perfectly calibrated model and at most 1. Empty bins add nothing. Bin edges are m/M
computed exactly as written, so a confidence of 0.3 with M = 10 falls in (0.2, 0.3].
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_BINS = 10  # Guo et al. use 15; 10 is the common choice in LM evaluation reports


@dataclass(frozen=True)
class CalibrationBin:
    lower: float  # the bin is (lower, upper]
    upper: float
    count: int
    accuracy: float  # 0 for an empty bin
    confidence: float  # mean confidence; 0 for an empty bin


def calibration_bins(
    confidences: Sequence[float], correct: Sequence[bool], *, num_bins: int = DEFAULT_BINS
) -> list[CalibrationBin]:
    """The reliability diagram's bins: count, accuracy and mean confidence of each."""
    if len(confidences) != len(correct):
        raise ValueError(f"{len(confidences)} confidences but {len(correct)} correctness flags")
    if not confidences:
        raise ValueError("calibration of an empty set is undefined")
    if num_bins < 1:
        raise ValueError(f"num_bins must be at least 1, got {num_bins}")
    uppers = [m / num_bins for m in range(1, num_bins + 1)]
    counts = [0] * num_bins
    hits = [0] * num_bins
    sums = [0.0] * num_bins
    for confidence, right in zip(confidences, correct, strict=True):
        if not 0.0 <= confidence <= 1.0:
            raise ValueError(f"a confidence must lie in [0, 1], got {confidence}")
        m = bisect.bisect_left(uppers, confidence)  # the first bin whose upper edge is >= confidence
        counts[m] += 1
        hits[m] += bool(right)
        sums[m] += confidence
    return [
        CalibrationBin(
            lower=(m / num_bins),
            upper=uppers[m],
            count=counts[m],
            accuracy=hits[m] / counts[m] if counts[m] else 0.0,
            confidence=sums[m] / counts[m] if counts[m] else 0.0,
        )
        for m in range(num_bins)
    ]


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], *, num_bins: int = DEFAULT_BINS
) -> float:
    """ECE = Σ_m |B_m|/n · |acc(B_m) − conf(B_m)| over ``num_bins`` equal-width confidence bins."""
    n = len(confidences)
    bins = calibration_bins(confidences, correct, num_bins=num_bins)
    return sum(b.count / n * abs(b.accuracy - b.confidence) for b in bins)
