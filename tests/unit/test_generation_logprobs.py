"""The engine's log-probabilities, prompt scoring, logit bias and OpenAI's penalties, on tiny random models.

References: one plain transformers forward pass over prompt + answer and ``log_softmax`` of its raw
logits (the distribution the engine documents), and penalties computed by hand on small tensors.
"""

from __future__ import annotations

import pytest
import torch

from genlab.errors import GenlabError
from genlab.generation import prefill as prefill_module
from genlab.generation.engine import GenerationEngine
from genlab.generation.penalties import FrequencyPresencePenalty, LogitBias
from genlab.generation.settings import GenerationSettings
from genlab.models.tiny import tiny_model

PROMPTS = ["#Person1#: My parcel arrived damaged.", "Hello", "#Person2#: Thanks! See you at eight tonight then."]
TOL = 1e-3  # packed oneDNN weights sum in another order than the reference


@pytest.fixture(scope="module")
def engine() -> GenerationEngine:
    loaded = tiny_model("causal", seed=3)
    with torch.no_grad():  # sharp attention: a masking or batching mistake changes the numbers
        for name, weight in loaded.model.named_parameters():
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                weight.mul_(20)
    return GenerationEngine(loaded, batch_size=4)


def reference(engine: GenerationEngine, ids: list[int]) -> torch.Tensor:
    """(len(ids), vocab) raw log-probabilities of the next token after each prefix."""
    with torch.no_grad():
        return torch.log_softmax(engine.loaded.model(torch.tensor([ids])).logits[0].float(), dim=-1)


def test_logprobs_in_a_mixed_batch_match_the_reference_and_change_no_answer(engine) -> None:
    plain = engine.generate(PROMPTS, GenerationSettings(max_new_tokens=6))
    asked = [
        GenerationSettings(max_new_tokens=6, logprobs=3),
        GenerationSettings(max_new_tokens=6),
        GenerationSettings(max_new_tokens=6, logprobs=0, prompt_logprobs=2),
    ]
    mixed = engine.generate(PROMPTS, asked)
    assert [c.choices[0].token_ids for c in mixed] == [c.choices[0].token_ids for c in plain]
    assert mixed[1].choices[0].logprobs == () and mixed[1].prompt_logprobs == ()
    for index in (0, 2):
        prompt = engine.encode(PROMPTS[index])
        choice = mixed[index].choices[0]
        picked = [entry.token for entry in choice.logprobs]
        assert picked[: len(choice.token_ids)] == list(choice.token_ids)  # plus end-of-sequence, if it came
        expected = reference(engine, prompt + picked)
        for step, entry in enumerate(choice.logprobs):
            row = expected[len(prompt) - 1 + step]
            assert entry.logprob == pytest.approx(float(row[entry.token]), abs=TOL)
            k = asked[index].logprobs
            assert [t for t, _ in entry.top] == torch.topk(row, k).indices.tolist() if k else entry.top == ()
    scored = mixed[2].prompt_logprobs
    prompt = engine.encode(PROMPTS[2])
    assert len(scored) == len(prompt) and scored[0] is None
    expected = reference(engine, prompt)
    for j in range(1, len(prompt)):
        assert scored[j].token == prompt[j]
        assert scored[j].logprob == pytest.approx(float(expected[j - 1, prompt[j]]), abs=TOL)
        assert [v for _, v in scored[j].top] == pytest.approx(torch.topk(expected[j - 1], 2).values.tolist(), abs=TOL)


def test_scoring_only_and_a_small_logits_budget_give_the_same_scores(engine, monkeypatch) -> None:
    settings = GenerationSettings(max_new_tokens=0, prompt_logprobs=1)
    whole = engine.generate(PROMPTS, settings)
    assert all(c.choices[0].token_ids == () and c.choices[0].finish_reason == "length" for c in whole)
    monkeypatch.setattr(prefill_module, "SCORING_LOGITS_BUDGET", 1)  # one scoring row per prefill
    split = engine.generate(PROMPTS, settings)
    for a, b in zip(whole, split, strict=True):
        assert [e and round(e.logprob, 4) for e in a.prompt_logprobs] == [e and round(e.logprob, 4) for e in b.prompt_logprobs]


def test_logprobs_do_not_change_a_seeded_sample(engine) -> None:
    sampled = GenerationSettings(max_new_tokens=8, temperature=1.3, top_p=0.9, seed=5)
    without = engine.generate(PROMPTS[0], sampled)[0].choices[0].token_ids
    with_logprobs = engine.generate(PROMPTS[0], sampled.with_overrides(logprobs=2))[0].choices[0].token_ids
    assert with_logprobs == without


def test_logit_bias_bans_and_forces_tokens(engine) -> None:
    greedy = engine.generate(PROMPTS[1], GenerationSettings(max_new_tokens=4))[0].choices[0].token_ids
    banned = engine.generate(PROMPTS[1], GenerationSettings(max_new_tokens=4, logit_bias={greedy[0]: -100}))[0]
    assert banned.choices[0].token_ids[0] != greedy[0]
    forced = engine.generate(PROMPTS[1], GenerationSettings(max_new_tokens=4, logit_bias={77: 100}))[0]
    assert forced.choices[0].token_ids == (77, 77, 77, 77)


def test_penalties_by_hand_on_small_tensors() -> None:
    scores = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])
    history = torch.tensor([[4, 4, 1, 2, 2, 2, 3]])  # prompt [4, 4]; generated: 1 once, 2 three times, 3 once
    out = FrequencyPresencePenalty(frequency=0.5, presence=0.25, prompt_length=2)(history, scores)
    # mu[j] - c[j] * 0.5 - [c[j] > 0] * 0.25, c = [0, 1, 3, 1, 0] (token 4 is in the prompt only: no penalty)
    assert out.tolist() == [[1.0, 2.0 - 0.75, 3.0 - 1.75, 4.0 - 0.75, 5.0]]
    biased = LogitBias(((0, -100.0), (3, 2.5)))(history, scores)
    assert biased.tolist() == [[-99.0, 2.0, 3.0, 6.5, 5.0]]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"max_new_tokens": 0}, ["max_new_tokens=0", "prompt_logprobs"]),
        ({"logit_bias": {5: 150}}, ["-100..100"]),
        ({"logit_bias": {-1: 1}}, ["token id -1"]),
        ({"frequency_penalty": 2.5}, ["frequency_penalty"]),
        ({"logprobs": 21}, ["logprobs"]),
    ],
)
def test_bad_settings_name_the_field(changes, words) -> None:
    with pytest.raises(GenlabError) as raised:
        GenerationSettings(**changes)
    for word in words:
        assert word in str(raised.value)


def test_prompt_scoring_is_refused_for_an_encoder_decoder_model() -> None:
    seq2seq = GenerationEngine(tiny_model("seq2seq", seed=1), batch_size=2)
    with pytest.raises(GenlabError, match="encoder-decoder"):
        seq2seq.generate("Hello", GenerationSettings(max_new_tokens=2, prompt_logprobs=1))
    result = seq2seq.generate("Hello", GenerationSettings(max_new_tokens=3, logprobs=1))[0]
    assert len(result.choices[0].logprobs) >= len(result.choices[0].token_ids)  # next-token log-probabilities work
