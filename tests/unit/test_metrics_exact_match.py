"""Exact match, accuracy and length statistics: simple counts, every expected value worked by hand."""

import pytest

from genlab.errors import GenlabError
from genlab.evaluation.metrics import accuracy, exact_match, length_stats, normalize_answer


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        # By hand, following SQuAD v1.1's normalize_answer: lower, no punctuation, no articles, spaces.
        ("The  Eiffel Tower!", "eiffel tower"),
        ("an apple, a pear", "apple pear"),
        ("Theatre", "theatre"),  # "the" inside a word is not an article
        ("  New\tYork\n", "new york"),
        ("U.S.A.", "usa"),
    ],
)
def test_squad_normalisation(text: str, normalised: str) -> None:
    assert normalize_answer(text) == normalised


def test_exact_match_by_hand() -> None:
    predictions = ["The Eiffel Tower.", "paris", "London", "a cat"]
    references = ["eiffel tower", "Paris", "Berlin", "the cat"]
    # Normalised: 1st, 2nd and 4th match, the 3rd does not -> 3/4.
    assert exact_match(predictions, references) == {"exact_match": 0.75}
    # Raw comparison: no pair is the same string -> 0/4.
    assert exact_match(predictions, references, normalize=False) == {"exact_match": 0.0}
    assert exact_match(["paris"], ["paris"], normalize=False) == {"exact_match": 1.0}


def test_exact_match_takes_any_reference() -> None:
    # The 1st matches its 2nd reference, the 2nd matches none -> 1/2.
    assert exact_match(["NYC", "Boston"], [["New York", "nyc"], ["Chicago"]]) == {"exact_match": 0.5}


def test_accuracy_by_hand() -> None:
    # 3 of 5 labels agree.
    assert accuracy(["A", "B", "C", "A", "D"], ["A", "B", "D", "A", "C"]) == {"accuracy": 0.6}
    assert accuracy([1, 0, 1], [1, 1, 1]) == {"accuracy": pytest.approx(2 / 3)}


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(GenlabError, match="2 predictions but 1 references"):
        exact_match(["a", "b"], ["a"])
    with pytest.raises(GenlabError, match="accuracy of an empty set"):
        accuracy([], [])
    with pytest.raises(GenlabError, match="empty"):
        length_stats([])


def test_length_stats_in_words_by_hand() -> None:
    # Word counts 1, 3, 4, 8: mean 16/4 = 4, median (3 + 4) / 2 = 3.5, min 1, max 8.
    texts = ["Hello.", "the cat sat", "one two  three four", "a b c d e f g h"]
    assert length_stats(texts) == {
        "length_words_mean": 4.0,
        "length_words_median": 3.5,
        "length_words_min": 1.0,
        "length_words_max": 8.0,
    }


def _word_level_tokenizer():  # noqa: ANN202 - a PreTrainedTokenizerFast
    """Splits words and punctuation apart (one token each) and adds a BOS token to every text."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    word_level = Tokenizer(models.WordLevel({"<s>": 0, "<unk>": 1}, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    word_level.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=word_level, bos_token="<s>", unk_token="<unk>")


def test_length_stats_in_tokens_by_hand() -> None:
    texts = ["Hello there, how are you?", "ok", "A longer sentence about the weather."]
    # By hand: words and punctuation marks are tokens, the BOS the tokenizer adds is not counted:
    # 7 ("Hello there , how are you ?"), 1 ("ok"), 7 ("A longer sentence about the weather .").
    stats = length_stats(texts, _word_level_tokenizer())
    assert stats["length_tokens_mean"] == pytest.approx(15 / 3)
    assert stats["length_tokens_median"] == 7.0
    assert (stats["length_tokens_min"], stats["length_tokens_max"]) == (1.0, 7.0)
    assert stats["length_words_max"] == 6.0  # "A longer sentence about the weather."
