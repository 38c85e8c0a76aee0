"""Bootstrap intervals: seeded, centred on the mean, as wide as the textbook standard error says, paired."""

import math
import random

import pytest

from genlab.errors import GenlabError
from genlab.evaluation.bootstrap import bootstrap_interval, paired_bootstrap_interval


def test_interval_is_seeded_and_holds_the_mean() -> None:
    rng = random.Random(1)
    values = [rng.random() for _ in range(50)]
    first, again = bootstrap_interval(values), bootstrap_interval(values)
    assert first == again  # the same rows give the same interval
    assert first.value == pytest.approx(sum(values) / len(values))
    assert first.low < first.value < first.high
    assert bootstrap_interval(values, seed=1) != first  # the seed is what fixes it


def test_width_matches_the_normal_approximation() -> None:
    # 200 coin flips, half heads: the 95% interval of the mean is about ±1.96·sqrt(p(1-p)/n) = ±0.0693.
    values = [1.0, 0.0] * 100
    interval = bootstrap_interval(values)
    half_width = (interval.high - interval.low) / 2
    assert half_width == pytest.approx(1.96 * math.sqrt(0.25 / 200), rel=0.15)


def test_constant_rows_have_no_spread() -> None:
    interval = bootstrap_interval([1.0] * 12)
    assert (interval.value, interval.low, interval.high) == (1.0, 1.0, 1.0)


def test_paired_interval_of_a_constant_gain_is_that_gain() -> None:
    # Every row gains exactly 0.1: unpaired intervals of each run overlap, the paired one is [0.1, 0.1].
    rng = random.Random(2)
    base = [rng.random() * 0.5 for _ in range(30)]
    better = [b + 0.1 for b in base]
    paired = paired_bootstrap_interval(base, better)
    assert paired.low == pytest.approx(0.1) and paired.high == pytest.approx(0.1) and not paired.spans_zero
    assert bootstrap_interval(better).low < bootstrap_interval(base).high  # unpaired, they would overlap


def test_paired_interval_of_noise_spans_zero() -> None:
    rng = random.Random(3)
    base = [rng.random() for _ in range(40)]
    shuffled = base[:]
    rng.shuffle(shuffled)  # the same scores on other rows: no systematic difference
    assert paired_bootstrap_interval(base, shuffled).spans_zero


def test_bad_inputs_are_refused_in_one_sentence() -> None:
    with pytest.raises(GenlabError, match="at least one row"):
        bootstrap_interval([])
    with pytest.raises(GenlabError, match="same rows"):
        paired_bootstrap_interval([0.1, 0.2], [0.3])
