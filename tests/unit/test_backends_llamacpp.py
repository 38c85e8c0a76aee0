"""The llama.cpp backend on the default model's own Q4_1 GGUF (about 0.2 s to load, ~100 tokens/s here).

llama-cpp-python is optional (``make setup-llamacpp`` compiles it; ``make test`` does not install it),
so these tests skip, saying so, where it is missing.
"""

from __future__ import annotations

import threading

import pytest

from genlab.errors import InvalidValueError, ModelNotFoundError, PromptTooLongError
from genlab.generation.settings import GenerationSettings

llama_cpp = pytest.importorskip(
    "llama_cpp", reason="llama-cpp-python is optional and not installed: `make setup-llamacpp` builds it"
)

from genlab.serving.backend import Backend  # noqa: E402
from genlab.serving.backends import get_backend  # noqa: E402
from genlab.serving.backends.llamacpp import LlamaCppBackend  # noqa: E402
from genlab.serving.backends.speed import measure_single_stream  # noqa: E402

MODEL = "smollm2-135m-instruct"
STORY = [{"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."}]


@pytest.fixture(scope="module")
def backend():
    served = LlamaCppBackend(MODEL, threads=1)
    yield served
    served.close()


def _run(backend: LlamaCppBackend, prompt: str, formatted: bool = True, **settings):
    handle = backend.submit(MODEL, prompt, GenerationSettings(**settings), formatted=formatted)
    deltas = list(handle)
    return deltas, handle.result(timeout=120)


def test_it_is_a_backend_and_the_registry_returns_it(backend: LlamaCppBackend) -> None:
    assert isinstance(backend, Backend)
    assert get_backend("llama.cpp") is LlamaCppBackend
    assert backend.models() == [MODEL]
    assert backend.context_window == 8192  # SmolLM2's llama.context_length in the GGUF


def test_chat_uses_the_ggufs_own_template(backend: LlamaCppBackend) -> None:
    text = backend.format_chat([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}])
    assert text.endswith("<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n")
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")
    # Special tokens in a formatted prompt are single tokens: <|im_start|> and <|im_end|> are not split.
    assert backend.count_tokens("<|im_start|>user\n<|im_end|>", formatted=True) == 4


def test_greedy_generation_matches_llama_cpp_pythons_own_completion(backend: LlamaCppBackend) -> None:
    prompt = backend.format_chat(STORY)
    deltas, result = _run(backend, prompt, max_new_tokens=16)
    # The reference: llama-cpp-python's create_completion, greedy, on the same weights.
    # reset(): the backend reads every prompt afresh, so the reference must not reuse the cached prefix.
    llm = backend._load_locked()
    llm.reset()
    reference = llm.create_completion(prompt, max_tokens=16, temperature=0.0)
    assert result.text == reference["choices"][0]["text"]
    assert result.choices[0].completion_tokens == reference["usage"]["completion_tokens"] == 16
    assert result.prompt_tokens == reference["usage"]["prompt_tokens"] == backend.count_tokens(prompt, formatted=True)
    assert result.finish_reason == "length"
    assert "".join(d.text for d in deltas) == result.text and len(deltas) > 1  # streamed piece by piece
    assert {d.choice for d in deltas} == {0}


def test_a_stop_sequence_ends_the_text_before_it_and_is_never_streamed(backend: LlamaCppBackend) -> None:
    prompt = backend.format_chat(STORY)
    _, full = _run(backend, prompt, max_new_tokens=16)
    words = full.text.split()
    stop = " " + words[len(words) // 2]
    deltas, result = _run(backend, prompt, max_new_tokens=16, stop=[stop])
    assert result.text == full.text[: full.text.index(stop)]
    assert result.finish_reason == "stop"
    assert "".join(d.text for d in deltas) == result.text


def test_a_seed_makes_sampling_reproducible_and_choices_differ(backend: LlamaCppBackend) -> None:
    prompt = backend.format_chat(STORY)
    settings = dict(max_new_tokens=10, temperature=1.2, num_return_sequences=2, seed=7)
    first_deltas, first = _run(backend, prompt, **settings)
    _, again = _run(backend, prompt, **settings)
    assert [c.text for c in first.choices] == [c.text for c in again.choices]
    assert first.choices[0].text != first.choices[1].text  # choice i samples with seed + i
    for index, choice in enumerate(first.choices):
        assert "".join(d.text for d in first_deltas if d.choice == index) == choice.text


def test_concurrent_requests_wait_their_turn_and_give_the_answer_they_give_alone(backend: LlamaCppBackend) -> None:
    prompts = [backend.format_chat([{"role": "user", "content": q}]) for q in ("What is rain?", "Name a colour.")]
    alone = [_run(backend, p, max_new_tokens=8)[1].text for p in prompts]
    results: dict[int, str] = {}

    def ask(index: int) -> None:
        results[index] = _run(backend, prompts[index], max_new_tokens=8)[1].text

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [results[0], results[1]] == alone


def test_cancel_stops_generation_early(backend: LlamaCppBackend) -> None:
    handle = backend.submit(MODEL, backend.format_chat(STORY), GenerationSettings(max_new_tokens=400), formatted=True)
    next(iter(handle))
    handle.cancel()
    result = handle.result(timeout=120)
    assert result.choices[0].completion_tokens < 400 and result.finish_reason == "stop"


def test_unload_frees_the_weights_and_the_next_request_reloads_them(backend: LlamaCppBackend) -> None:
    prompt = backend.format_chat(STORY)
    before = _run(backend, prompt, max_new_tokens=8)[1].text
    backend.unload()
    assert not backend.loaded
    assert backend.count_tokens(prompt, formatted=True) > 0  # the vocabulary stays
    assert _run(backend, prompt, max_new_tokens=8)[1].text == before
    assert backend.loaded


def test_bad_requests_fail_with_one_sentence(backend: LlamaCppBackend) -> None:
    with pytest.raises(ModelNotFoundError, match="answers to 'smollm2-135m-instruct'"):
        backend.submit("other-model", "hello", GenerationSettings())
    small = LlamaCppBackend(MODEL, context_window=32, threads=1)
    try:
        with pytest.raises(PromptTooLongError, match="context window of 32 tokens"):
            small.submit(MODEL, "word " * 40, GenerationSettings(max_new_tokens=4))
        with pytest.raises(PromptTooLongError):
            small.submit(MODEL, "word " * 20, GenerationSettings(max_new_tokens=20))
    finally:
        small.close()
    with pytest.raises(InvalidValueError, match="--backend genlab"):
        LlamaCppBackend(MODEL, adapters={"summarise": "/tmp/adapter"})
    with pytest.raises(InvalidValueError, match="trained on at most 8192"):
        LlamaCppBackend(MODEL, context_window=100_000)


def test_single_stream_measurement_counts_the_generated_tokens(backend: LlamaCppBackend) -> None:
    speed = measure_single_stream(backend, STORY[0]["content"], max_tokens=8, repeats=1)
    assert speed.backend == "llama.cpp" and speed.completion_tokens == 8
    assert 0 < speed.first_token_seconds <= speed.seconds
    assert speed.tokens_per_second == pytest.approx(8 / speed.seconds)
