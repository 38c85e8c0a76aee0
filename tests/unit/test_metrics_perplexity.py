import math

import pytest
import torch

from genlab.errors import GenlabError, PromptTooLongError
from genlab.evaluation.metrics import perplexity
from genlab.models.tiny import tiny_model

TEXTS = [
    "Hello, how are you today?",
    "The meeting is moved to Tuesday afternoon because the room is booked.",
    "Thanks!",
    "Could you send me the report before Friday, please?",
    "I will call the restaurant and book a table for four people at eight.",
]


@pytest.fixture(scope="module")
def causal():  # noqa: ANN201 - LoadedModel
    return tiny_model("causal", seed=0)


@pytest.fixture(scope="module")
def seq2seq():  # noqa: ANN201 - LoadedModel
    return tiny_model("seq2seq", seed=0)


def reference_loss(loaded, text: str) -> tuple[float, int]:  # noqa: ANN001
    """transformers' own mean loss of one text (no padding) and its number of predicted tokens."""
    ids = loaded.tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        loss = loaded.model(input_ids=ids, labels=ids).loss
    return float(loss), ids.shape[1] - 1


def test_single_text_matches_the_models_loss(causal) -> None:  # noqa: ANN001
    # Reference: exp(model(labels=ids).loss), transformers' mean next-token cross-entropy.
    loss, tokens = reference_loss(causal, TEXTS[1])
    scores = perplexity(causal, [TEXTS[1]])
    assert scores["tokens"] == tokens
    assert scores["nll_per_token"] == pytest.approx(loss, rel=1e-5)
    assert scores["perplexity"] == pytest.approx(math.exp(loss), rel=1e-5)


def test_corpus_perplexity_is_token_weighted(causal) -> None:  # noqa: ANN001
    # Reference: the per-text losses of transformers, weighted by each text's predicted tokens.
    pairs = [reference_loss(causal, text) for text in TEXTS[:2]]
    total_tokens = sum(tokens for _, tokens in pairs)
    weighted = sum(loss * tokens for loss, tokens in pairs) / total_tokens
    scores = perplexity(causal, TEXTS[:2], batch_size=2)
    assert scores["tokens"] == total_tokens
    assert scores["perplexity"] == pytest.approx(math.exp(weighted), rel=1e-5)
    mean_of_perplexities = sum(math.exp(loss) for loss, _ in pairs) / 2
    assert scores["perplexity"] != pytest.approx(mean_of_perplexities, rel=1e-5)


def test_batch_size_does_not_change_the_result(causal) -> None:  # noqa: ANN001
    one = perplexity(causal, TEXTS, batch_size=1)
    three = perplexity(causal, TEXTS, batch_size=3)  # batches mix lengths, so padding is masked
    assert three["tokens"] == one["tokens"]
    assert three["perplexity"] == pytest.approx(one["perplexity"], rel=1e-5)


def test_random_model_is_near_uniform(causal) -> None:  # noqa: ANN001
    # A freshly initialised model predicts nearly uniformly: perplexity close to the vocabulary size.
    vocab = causal.model.config.vocab_size
    assert 0.5 * vocab < perplexity(causal, TEXTS)["perplexity"] < 1.5 * vocab


def test_seq2seq_perplexity_of_targets_given_sources(seq2seq) -> None:  # noqa: ANN001
    sources = ["summarize: " + text for text in TEXTS[:3]]
    targets = ["A greeting.", "The meeting moved to Tuesday.", "Thanks."]
    # Reference: transformers' mean loss per pair (labels = target ids, no padding), token-weighted.
    total_nll, total_tokens = 0.0, 0
    for source, target in zip(sources, targets, strict=True):
        source_ids = seq2seq.tokenizer(source, return_tensors="pt")["input_ids"]
        labels = seq2seq.tokenizer(text_target=target, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            loss = float(seq2seq.model(input_ids=source_ids, labels=labels).loss)
        total_nll += loss * labels.shape[1]
        total_tokens += labels.shape[1]
    for batch_size in (1, 3):
        scores = perplexity(seq2seq, targets, sources=sources, batch_size=batch_size)
        assert scores["tokens"] == total_tokens
        assert scores["perplexity"] == pytest.approx(math.exp(total_nll / total_tokens), rel=1e-5)


def test_seq2seq_needs_sources_and_causal_refuses_them(causal, seq2seq) -> None:  # noqa: ANN001
    with pytest.raises(GenlabError, match="pass sources="):
        perplexity(seq2seq, ["a target"])
    with pytest.raises(GenlabError, match="2 texts but 1 sources"):
        perplexity(seq2seq, ["a", "b"], sources=["x"])
    with pytest.raises(GenlabError, match="only for encoder-decoder"):
        perplexity(causal, ["a text"], sources=["a source"])


def test_too_long_text_is_refused_with_its_index(causal) -> None:  # noqa: ANN001
    texts = ["short text", "word " * 600]  # the tiny model's window is 512 positions
    with pytest.raises(PromptTooLongError, match=r"text 1 has \d+ tokens, more than the 512"):
        perplexity(causal, texts)
    with pytest.raises(PromptTooLongError, match="text 0"):
        perplexity(causal, ["a sentence of more than four tokens"], max_length=4)


def test_bad_inputs_are_refused(causal) -> None:  # noqa: ANN001
    with pytest.raises(GenlabError, match="empty"):
        perplexity(causal, [])
    with pytest.raises(GenlabError, match="batch_size=0"):
        perplexity(causal, TEXTS, batch_size=0)
    with pytest.raises(GenlabError, match="max_length=4096"):
        perplexity(causal, TEXTS, max_length=4096)
    with pytest.raises(GenlabError, match="no text has a token to predict"):
        perplexity(causal, ["", "a"])
