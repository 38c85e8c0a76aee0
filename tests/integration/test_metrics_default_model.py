"""Perplexity on the real default model: plausible values, and word order matters."""

import random

import pytest

from genlab.evaluation.metrics import perplexity

pytestmark = pytest.mark.integration

SENTENCES = [
    "The weather was sunny and warm, so we decided to have lunch in the park.",
    "She asked her manager for a day off to visit her parents next week.",
    "Please remember to turn off the lights when you leave the office.",
]


def shuffled(sentence: str, seed: int) -> str:
    words = sentence.split()
    random.Random(seed).shuffle(words)
    return " ".join(words)


@pytest.fixture(scope="module")
def default_model():  # noqa: ANN201 - LoadedModel
    from genlab.models import load_model

    return load_model("smollm2-135m-instruct")


def test_plain_english_is_plausible_and_beats_shuffled_words(default_model) -> None:  # noqa: ANN001
    plain = perplexity(default_model, SENTENCES)
    scrambled = perplexity(default_model, [shuffled(s, seed) for seed, s in enumerate(SENTENCES)])
    assert 1.0 < plain["perplexity"] < 1000.0
    assert plain["perplexity"] < scrambled["perplexity"]


def test_batch_size_does_not_change_the_result(default_model) -> None:  # noqa: ANN001
    one = perplexity(default_model, SENTENCES, batch_size=1)
    three = perplexity(default_model, SENTENCES, batch_size=3)
    assert three["tokens"] == one["tokens"]
    assert three["perplexity"] == pytest.approx(one["perplexity"], rel=1e-4)
