"""Dynamic batching in the genlab backend: requests that share forward passes answer as they would alone.

Each check compares the served answer with the engine decoding the same request by itself (or with
peft's merged adapter), on a tiny model whose sharpened attention makes batching mistakes visible.
"""

from __future__ import annotations

import pytest
from test_serve_support import PROMPTS, make_tiny_assets, wait_for

from genlab.generation import GenerationEngine, GenerationSettings
from genlab.models.adapters import merge_adapter
from genlab.models.load import load_model
from genlab.serving.genlab_backend import GenlabBackend


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory):
    return make_tiny_assets(tmp_path_factory.getbasetemp() / "serve-assets")


@pytest.fixture(scope="module")
def adapter_backend(assets):
    backend = GenlabBackend(str(assets.base), assets.adapters, max_batch=4, model_id="tiny")
    yield backend
    backend.unload()


def alone(loaded, prompt: str, settings: GenerationSettings) -> tuple[int, ...]:
    """Greedy tokens for one prompt decoded by itself (batch of one), the reference."""
    engine = GenerationEngine(loaded, batch_size=1)
    engine.eos_ids = set()
    return engine.generate([prompt], settings)[0].choices[0].token_ids


def no_eos(backend: GenlabBackend) -> None:
    backend.scheduler.engine.eos_ids = set()  # every row runs to its own max tokens


def test_requests_joining_a_running_batch_answer_as_alone(assets) -> None:
    backend = GenlabBackend(str(assets.base), max_batch=3, model_id="tiny")
    no_eos(backend)
    limits = [12, 3, 9, 5, 14, 7]
    first = [backend.submit("tiny", p, GenerationSettings(max_new_tokens=n)) for p, n in zip(PROMPTS[:2], limits[:2], strict=True)]
    next(iter(first[0]))  # the batch is decoding: the rest join it while it runs
    later = [backend.submit("tiny", p, GenerationSettings(max_new_tokens=n)) for p, n in zip(PROMPTS[2:], limits[2:], strict=True)]
    results = [h.result(60) for h in first + later]
    steps, rows = backend.decode_stats()
    backend.unload()

    loaded = load_model(str(assets.base))
    tokenizer = loaded.tokenizer
    for prompt, limit, result in zip(PROMPTS, limits, results, strict=True):
        expected = alone(loaded, prompt, GenerationSettings(max_new_tokens=limit))
        assert result.choices[0].completion_tokens == limit and result.finish_reason == "length"
        assert result.text == tokenizer.decode(list(expected), skip_special_tokens=True)
    # Each row took part in one forward pass per token, and passes were shared: fewer passes than tokens.
    assert rows == sum(limits) and steps < sum(limits)


def test_without_batching_requests_decode_one_at_a_time(assets) -> None:
    backend = GenlabBackend(str(assets.base), max_batch=1, model_id="tiny")
    no_eos(backend)
    handles = [backend.submit("tiny", p, GenerationSettings(max_new_tokens=6)) for p in PROMPTS[:4]]
    texts = [h.result(60).text for h in handles]
    assert backend.decode_stats() == (4 * 6, 4 * 6)  # one forward pass, of one row, per token
    backend.unload()
    loaded = load_model(str(assets.base))
    expected = [loaded.tokenizer.decode(list(alone(loaded, p, GenerationSettings(max_new_tokens=6)))) for p in PROMPTS[:4]]
    assert texts == expected


def test_base_and_adapters_answer_the_same_mixed_in_one_batch_as_alone(assets, adapter_backend) -> None:
    no_eos(adapter_backend)
    settings = GenerationSettings(max_new_tokens=10)
    ids = ["tiny", "alpha", "beta", "soft"]
    jobs = [(ids[i % 4], PROMPTS[i % len(PROMPTS)]) for i in range(8)]
    handles = [adapter_backend.submit(model, prompt, settings) for model, prompt in jobs]  # all in flight at once
    together = [h.result(60).text for h in handles]
    one_by_one = [adapter_backend.submit(model, prompt, settings).result(60).text for model, prompt in jobs]
    assert together == one_by_one

    # The served adapters are the adapters: the same tokens as peft's merged LoRA / the soft prompt alone.
    base = load_model(str(assets.base))
    for index, (model, prompt) in enumerate(jobs[:4]):
        reference = base if model == "tiny" else merge_adapter(base, assets.adapters[model])
        assert together[index] == base.tokenizer.decode(list(alone(reference, prompt, settings)))
    # ... and they change the answers, so the comparisons above could fail.
    assert len({together[i] for i in range(4)}) == 4


def test_seeded_sampling_does_not_depend_on_batch_company(adapter_backend) -> None:
    sampled = GenerationSettings(max_new_tokens=10, temperature=1.3, top_k=40, seed=5, num_return_sequences=2)
    alone_result = adapter_backend.submit("alpha", PROMPTS[0], sampled).result(60)
    crowd = [adapter_backend.submit(m, p, GenerationSettings(max_new_tokens=12)) for m, p in zip(["tiny", "beta"], PROMPTS[1:3], strict=True)]
    again = adapter_backend.submit("alpha", PROMPTS[0], sampled)
    for handle in crowd:
        handle.result(60)
    in_company = again.result(60)
    assert [c.text for c in in_company.choices] == [c.text for c in alone_result.choices]
    assert in_company.choices[0].text != in_company.choices[1].text  # two choices, two samples


def test_stream_adds_up_to_the_answer_and_never_shows_the_stop_sequence(adapter_backend) -> None:
    no_eos(adapter_backend)
    free = adapter_backend.submit("beta", PROMPTS[1], GenerationSettings(max_new_tokens=16)).result(60).text
    stop = free[4:7]
    assert stop.strip(), free
    handle = adapter_backend.submit("beta", PROMPTS[1], GenerationSettings(max_new_tokens=16, stop=[stop]))
    pieces = [delta.text for delta in handle]
    result = handle.result(60)
    assert "".join(pieces) == result.text == free[: free.find(stop)]
    assert result.finish_reason == "stop" and stop not in "".join(pieces)


def test_a_cancelled_request_leaves_the_batch_and_the_others_finish(adapter_backend) -> None:
    no_eos(adapter_backend)
    long = adapter_backend.submit("tiny", PROMPTS[3], GenerationSettings(max_new_tokens=400))
    other = adapter_backend.submit("alpha", PROMPTS[4], GenerationSettings(max_new_tokens=20))
    next(iter(long))
    long.cancel()
    cut = long.result(60)
    assert cut.choices[0].completion_tokens < 400
    assert other.result(60).choices[0].completion_tokens == 20
    wait_for(lambda: adapter_backend.scheduler.idle, "the scheduler to go idle")


def test_unloaded_backend_reloads_on_submit_and_answers_the_same(assets) -> None:
    backend = GenlabBackend(str(assets.base), {"alpha": assets.adapters["alpha"]}, model_id="tiny")
    settings = GenerationSettings(max_new_tokens=8)
    before = backend.submit("alpha", PROMPTS[0], settings).result(60).text
    backend.unload()
    assert not backend.loaded and backend.count_tokens("Hello") > 0  # the tokenizer stays
    after = backend.submit("alpha", PROMPTS[0], settings).result(60).text
    assert backend.loaded and after == before
    backend.unload()


def test_unknown_model_and_too_long_prompt_are_refused(adapter_backend) -> None:
    from genlab.errors import ModelNotFoundError, PromptTooLongError

    with pytest.raises(ModelNotFoundError, match="tiny, alpha, beta, soft"):
        adapter_backend.submit("gamma", "Hi", GenerationSettings())
    # The soft prompt takes 4 of the 512 positions: what fills the base's window overflows the soft-prompted model's.
    prompt = " ".join(["word"] * 100)
    tokens = adapter_backend.count_tokens(prompt)
    assert adapter_backend.window_for("tiny") == 512 and adapter_backend.window_for("soft") == 508
    with pytest.raises(PromptTooLongError, match="context window of 508 tokens"):
        adapter_backend.submit("soft", prompt, GenerationSettings(max_new_tokens=510 - tokens))


def test_the_decoding_thread_holds_reordered_weights_while_loaded_and_frees_them_on_unload(
    assets, monkeypatch
) -> None:
    """The scheduler reorders the weights once, in its own thread (genlab.generation.packed_linear)."""
    import threading

    from genlab.generation import packed_linear

    monkeypatch.setattr(packed_linear, "MIN_WEIGHT_ELEMENTS", 0)  # the tiny model's layers are all small
    import torch

    threads_that_packed = []
    pack = packed_linear._pack

    def recorded_pack(model):
        threads_that_packed.append(threading.current_thread().name)
        return pack(model)

    monkeypatch.setattr(packed_linear, "_pack", recorded_pack)
    backend = GenlabBackend(str(assets.base), max_batch=2, model_id="tiny")
    layers = [m for m in backend.scheduler.engine.loaded.model.modules() if type(m) is torch.nn.Linear]
    answer = backend.submit("tiny", PROMPTS[0], GenerationSettings(max_new_tokens=6)).result(60)
    assert answer.choices[0].completion_tokens > 0
    assert threads_that_packed == ["genlab-scheduler"]
    assert layers and all("forward" in layer.__dict__ for layer in layers)
    backend.submit("tiny", PROMPTS[1], GenerationSettings(max_new_tokens=6)).result(60)
    assert threads_that_packed == ["genlab-scheduler"]  # once for the scheduler's life, not per request
    backend.unload()
    assert not any("forward" in layer.__dict__ for layer in layers)
