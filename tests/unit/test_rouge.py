import pytest

from genlab.evaluation.metrics import rouge, rouge_per_example


def test_rouge_by_hand() -> None:
    # By hand: prediction "the cat sat", reference "the cat sat on the mat".
    # Unigrams: 3 of 3 predicted match, 3 of 6 reference covered -> P=1, R=0.5, F1=2/3.
    # Bigrams: "the cat", "cat sat" both in the reference (5 bigrams) -> P=1, R=0.4, F1=0.5714.
    scores = rouge_per_example("the cat sat", "the cat sat on the mat")
    assert scores["rouge1"] == pytest.approx(2 / 3)
    assert scores["rouge2"] == pytest.approx(2 * 0.4 / 1.4)
    assert scores["rougeL"] == pytest.approx(2 / 3)


def test_stemming_matches_word_forms() -> None:
    # Porter stemming: "arranges"/"arranged" -> "arrang"; without it ROUGE-1 would be 0.5.
    assert rouge_per_example("refund arranged", "refund arranges")["rouge1"] == pytest.approx(1.0)


def test_multi_reference_takes_the_best_reference() -> None:
    refs = ["a dog barked loudly", "the cat sat on the mat"]
    assert rouge_per_example("the cat sat on the mat", refs)["rouge1"] == pytest.approx(1.0)


def test_corpus_rouge_is_the_mean() -> None:
    scores = rouge(["the cat sat", "completely different words"], ["the cat sat", "the cat sat"])
    assert scores["rouge1"] == pytest.approx(0.5)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        rouge(["a", "b"], ["a"])
