"""Log-likelihood scoring on tiny random models: hand computations and batch-size independence."""

import math

import pytest
import torch

from genlab.errors import InvalidValueError, PromptTooLongError
from genlab.evaluation.benchmarks import loglikelihoods, score_choices
from genlab.models.tiny import tiny_model
from tests.unit.test_generation import sharpen_attention

# Questions and choices of different lengths, so batches need padding on both sides of the split.
CONTEXTS = [
    "Question: What is frozen water called?\nAnswer:",
    "Question: A customer says their parcel arrived damaged and asks what they can do about it now?\nAnswer:",
    "Q: 2+2?\nA:",
    "Question: Which ocean is the largest on Earth, by area?\nAnswer:",
    "Hello",
]
CHOICES = [
    ["ice", "steam", "smoke", "a very long cloud of hot vapour"],
    ["apologise and offer a refund or a replacement", "ignore it"],
    ["4", "five", "twenty-two"],
    ["the Pacific", "the Atlantic Ocean", "the Indian Ocean", "the Arctic"],
    ["there", "world, how are you today?"],
]


@pytest.fixture(scope="module")
def causal():
    return tiny_model("causal", seed=0)


@pytest.fixture(scope="module", params=["causal", "seq2seq"])
def sharpened(request):
    return sharpen_attention(tiny_model(request.param, seed=7))


def test_loglikelihood_equals_a_hand_computation(causal) -> None:
    context, continuation = CONTEXTS[0], " ice"
    tokenizer = causal.tokenizer
    context_ids = tokenizer(context)["input_ids"]
    continuation_ids = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([context_ids + continuation_ids])
    with torch.no_grad():
        logprobs = causal.model(input_ids=ids).logits.log_softmax(-1)[0]  # (T, V), one forward pass
    # Token j of the continuation is predicted at position len(context) - 1 + j.
    by_hand = sum(float(logprobs[len(context_ids) - 1 + j, t]) for j, t in enumerate(continuation_ids))
    # Reference 2: transformers' own loss with the context masked (-100) is the mean NLL of the continuation.
    labels = torch.tensor([[-100] * len(context_ids) + continuation_ids])
    with torch.no_grad():
        from_loss = -float(causal.model(input_ids=ids, labels=labels).loss) * len(continuation_ids)
    assert by_hand == pytest.approx(from_loss, abs=1e-4)
    alone = loglikelihoods(causal, [(context, continuation)])[0]
    # In a batch with longer and shorter pairs (left padding), the score must not move.
    others = [(CONTEXTS[1], " a much longer continuation here"), ("Hi", " x")]
    mixed = loglikelihoods(causal, [others[0], (context, continuation), others[1]])
    assert alone == pytest.approx(by_hand, abs=1e-5)
    assert mixed[1] == pytest.approx(by_hand, abs=1e-5)


def test_seq2seq_loglikelihood_equals_the_model_loss() -> None:
    loaded = tiny_model("seq2seq", seed=0)
    context, continuation = CONTEXTS[1], " apologise and offer a refund"
    tokenizer = loaded.tokenizer
    context_ids = tokenizer(context)["input_ids"]
    continuation_ids = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    with torch.no_grad():  # reference: T5's cross-entropy with the continuation as labels (mean over tokens)
        loss = loaded.model(input_ids=torch.tensor([context_ids]), labels=torch.tensor([continuation_ids])).loss
    expected = -float(loss) * len(continuation_ids)
    scores = loglikelihoods(loaded, [(context, continuation), (CONTEXTS[2], " 4"), (CONTEXTS[0], " ice")], batch_size=3)
    assert scores[0] == pytest.approx(expected, abs=1e-4)
    assert all(math.isfinite(s) and s < 0 for s in scores)


def test_scores_do_not_depend_on_batch_size(sharpened) -> None:
    # Within 1e-5 (or 1e-7 relative, the float32 floor, for log-likelihoods beyond -100 nats: the
    # sharpened T5 scores some choices near -150, and float32 matrix products of other shapes round
    # differently by ~1e-7 of that). A padding leak moves scores by more than 1e-2 (next test).
    runs = {b: score_choices(sharpened, CONTEXTS, CHOICES, batch_size=b) for b in (1, 3, 8)}
    reference = runs[1]
    for batch_size in (3, 8):
        for one, other in zip(reference, runs[batch_size], strict=True):
            assert other.predicted == one.predicted and other.predicted_norm == one.predicted_norm
            assert other.loglikelihoods == pytest.approx(one.loglikelihoods, abs=1e-5, rel=1e-7)
            assert other.probabilities == pytest.approx(one.probabilities, abs=1e-5)


def test_the_batch_size_test_would_catch_a_padding_leak() -> None:
    # The sharpened model is sensitive enough: attending to left padding (an all-ones mask) moves a
    # log-likelihood by far more than the 1e-5 the batch-size test allows.
    loaded = sharpen_attention(tiny_model("causal", seed=7))
    ids = loaded.tokenizer(CONTEXTS[2] + " 4")["input_ids"]
    pad = [loaded.tokenizer.pad_token_id] * 12
    with torch.no_grad():
        clean = loaded.model(input_ids=torch.tensor([ids])).logits[0, -1].log_softmax(-1)
        leaked = loaded.model(input_ids=torch.tensor([pad + ids])).logits[0, -1].log_softmax(-1)
    assert float((clean - leaked).abs().max()) > 1e-2


def test_choice_scores_follow_the_harness_definitions(causal) -> None:
    scores = score_choices(causal, CONTEXTS, CHOICES, batch_size=4)
    direct = loglikelihoods(causal, [(c, " " + x) for c, options in zip(CONTEXTS, CHOICES) for x in options])
    flat = [ll for s in scores for ll in s.loglikelihoods]
    assert flat == pytest.approx(direct, abs=1e-5)  # each choice is scored after its " " prefix
    for s, options in zip(scores, CHOICES, strict=True):
        lls = s.loglikelihoods
        assert sum(s.probabilities) == pytest.approx(1.0)
        total = sum(math.exp(ll) for ll in lls)  # softmax over the choices' log-likelihoods
        assert s.probabilities == pytest.approx([math.exp(ll) / total for ll in lls])
        assert s.predicted == max(range(len(lls)), key=lambda i: lls[i])
        # acc_norm: LL divided by the choice's length in characters (lm-evaluation-harness).
        assert s.predicted_norm == max(range(len(lls)), key=lambda i: lls[i] / len(options[i]))
        assert s.confidence == max(s.probabilities)


def test_an_empty_context_is_scored_from_the_start_token(causal) -> None:
    score = loglikelihoods(causal, [("", "Hello there")])[0]
    assert math.isfinite(score) and score < 0


def test_too_long_and_empty_inputs_fail_clearly(causal) -> None:
    with pytest.raises(PromptTooLongError, match="context window of 512 tokens"):
        loglikelihoods(causal, [("word " * 600, " end")])
    with pytest.raises(InvalidValueError, match="choice cannot be empty"):
        loglikelihoods(causal, [("Question:", "")])
    with pytest.raises(InvalidValueError, match="batch_size=0"):
        loglikelihoods(causal, [("Question:", " a")], batch_size=0)
