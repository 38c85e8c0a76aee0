import math

import pytest
import sacrebleu

from genlab.errors import GenlabError
from genlab.evaluation.metrics import bleu, chrf

PREDICTIONS = ["the cat sat on the mat", "a dog barked at the postman today", "hello there"]
REFERENCES = ["the cat sat on a mat", "the dog barked at the mailman", "hello there friend"]


def test_bleu_by_hand() -> None:
    # By hand, "the cat sat on the mat" against "the cat sat on a mat" (6 tokens each, BP = 1):
    # 1-grams 5/6 ("the" is clipped to one), 2-grams 3/5, 3-grams 2/4, 4-grams 1/3,
    # BLEU = (5/6 * 3/5 * 2/4 * 1/3) ** (1/4) = (1/12) ** 0.25 = 0.5373.
    scores = bleu(["the cat sat on the mat"], ["the cat sat on a mat"])
    assert scores["bleu"] == pytest.approx((1 / 12) ** 0.25)
    assert scores["bleu_brevity_penalty"] == pytest.approx(1.0)


def test_brevity_penalty_by_hand() -> None:
    # A 5-token prefix of a 6-token reference: every n-gram matches, so BLEU = BP = exp(1 - 6/5).
    scores = bleu(["the cat sat on the"], ["the cat sat on the mat"])
    assert scores["bleu_brevity_penalty"] == pytest.approx(math.exp(-0.2))
    assert scores["bleu"] == pytest.approx(math.exp(-0.2))
    assert scores["bleu_length_ratio"] == pytest.approx(5 / 6)


def test_identical_is_one_and_disjoint_is_zero() -> None:
    assert bleu(["the quick brown fox jumps"], ["the quick brown fox jumps"])["bleu"] == pytest.approx(1.0)
    assert bleu(["alpha beta gamma delta"], ["one two three four"])["bleu"] == 0.0
    assert chrf(["the quick brown fox jumps"], ["the quick brown fox jumps"])["chrf"] == pytest.approx(1.0)
    # No character in common ("xyz" vs "abc"), so every character n-gram precision is 0.
    assert chrf(["xyz xyz"], ["abc abc"])["chrf"] == 0.0


def test_matches_sacrebleu_called_directly() -> None:
    # Reference values: sacrebleu's corpus functions on the same corpus, divided by 100.
    expected_bleu = sacrebleu.corpus_bleu(PREDICTIONS, [REFERENCES]).score / 100
    expected_chrf = sacrebleu.corpus_chrf(PREDICTIONS, [REFERENCES]).score / 100
    assert bleu(PREDICTIONS, REFERENCES)["bleu"] == pytest.approx(expected_bleu)
    assert chrf(PREDICTIONS, REFERENCES)["chrf"] == pytest.approx(expected_chrf)
    assert 0.0 < expected_bleu < 1.0  # the corpus is neither a perfect nor a zero match


def test_corpus_bleu_is_not_the_mean_of_sentence_bleus() -> None:
    sentence_mean = sum(bleu([p], [r])["bleu"] for p, r in zip(PREDICTIONS, REFERENCES, strict=True)) / 3
    assert bleu(PREDICTIONS, REFERENCES)["bleu"] != pytest.approx(sentence_mean)


def test_variable_reference_counts() -> None:
    # Row 0 has two references, row 1 one. Repeating a row's reference changes neither the clipped
    # counts nor the closest reference length, so sacrebleu on equal-width streams that repeat the
    # lone reference is the reference value.
    predictions = ["the cat sat on the mat", "a dog barked"]
    references = [["a cat sat on the mat", "the cat is on the mat"], "the dog barked"]
    streams = [["a cat sat on the mat", "the dog barked"], ["the cat is on the mat", "the dog barked"]]
    assert bleu(predictions, references)["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(predictions, streams).score / 100
    )
    assert chrf(predictions, references)["chrf"] == pytest.approx(
        sacrebleu.corpus_chrf(predictions, streams).score / 100
    )


def test_a_second_reference_can_only_help() -> None:
    one = bleu(["the cat is on the mat"], ["a cat sat on the mat"])["bleu"]
    two = bleu(["the cat is on the mat"], [["a cat sat on the mat", "the cat is on the mat"]])["bleu"]
    assert two == pytest.approx(1.0) and one < two


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(GenlabError, match="2 predictions but 1 references"):
        bleu(["a", "b"], ["a"])
    with pytest.raises(GenlabError, match="empty corpus"):
        chrf([], [])
    with pytest.raises(GenlabError, match="prediction 1 has no reference"):
        bleu(["a", "b"], ["a", []])
