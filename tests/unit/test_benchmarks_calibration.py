"""Expected calibration error (Guo et al. 2017) against hand computations."""

import pytest

from genlab.evaluation.benchmarks import calibration_bins, expected_calibration_error


def test_ece_by_hand() -> None:
    # By hand, M = 5 bins of width 0.2:
    #   (0.8, 1.0]: 0.95 right, 0.85 wrong -> acc 0.5, conf 0.90, |gap| 0.40, weight 2/6
    #   (0.6, 0.8]: 0.62 right              -> acc 1.0, conf 0.62, |gap| 0.38, weight 1/6
    #   (0.4, 0.6]: 0.58 right              -> acc 1.0, conf 0.58, |gap| 0.42, weight 1/6
    #   (0.2, 0.4]: 0.30 wrong, 0.25 wrong  -> acc 0.0, conf 0.275, |gap| 0.275, weight 2/6
    # ECE = (2*0.40 + 0.38 + 0.42 + 2*0.275) / 6 = 2.15 / 6
    confidences = [0.95, 0.85, 0.62, 0.58, 0.30, 0.25]
    correct = [True, False, True, True, False, False]
    assert expected_calibration_error(confidences, correct, num_bins=5) == pytest.approx(2.15 / 6)


def test_ece_with_ten_bins_by_hand() -> None:
    # M = 10: 0.95 (right) and 0.85 (wrong) now fall in different bins:
    #   (0.9, 1.0]: acc 1, conf 0.95 -> 0.05;  (0.8, 0.9]: acc 0, conf 0.85 -> 0.85
    #   (0.6, 0.7]: 0.62 right -> 0.38;  (0.5, 0.6]: 0.58 right -> 0.42
    #   (0.2, 0.3]: 0.30 and 0.25, both wrong -> conf 0.275, weight 2/6
    # ECE = (0.05 + 0.85 + 0.38 + 0.42 + 2*0.275) / 6 = 2.25 / 6
    confidences = [0.95, 0.85, 0.62, 0.58, 0.30, 0.25]
    correct = [True, False, True, True, False, False]
    assert expected_calibration_error(confidences, correct) == pytest.approx(2.25 / 6)


def test_a_calibrated_bin_has_no_error() -> None:
    # Four answers at confidence 0.75, three right: acc = conf = 0.75, so ECE = 0.
    assert expected_calibration_error([0.75] * 4, [True, True, True, False]) == pytest.approx(0.0)


def test_always_wrong_with_full_confidence_is_the_worst() -> None:
    assert expected_calibration_error([1.0, 1.0], [False, False]) == pytest.approx(1.0)


def test_bins_are_closed_on_the_right() -> None:
    # I_m = ((m-1)/M, m/M]: 0.3 belongs to (0.2, 0.3], 0 to the first bin, 1 to the last.
    bins = calibration_bins([0.3, 0.0, 1.0], [True, True, True], num_bins=10)
    assert [b.count for b in bins] == [1, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    assert (bins[2].lower, bins[2].upper) == pytest.approx((0.2, 0.3))
    assert bins[2].confidence == pytest.approx(0.3) and bins[2].accuracy == 1.0


@pytest.mark.parametrize(
    ("confidences", "correct", "message"),
    [([0.5], [True, False], "1 confidences but 2"), ([], [], "empty"), ([1.2], [True], r"\[0, 1\]")],
)
def test_bad_inputs_are_refused(confidences, correct, message) -> None:
    with pytest.raises(ValueError, match=message):
        expected_calibration_error(confidences, correct)
