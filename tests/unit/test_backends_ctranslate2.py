"""`genlab serve --backend ctranslate2` through the official openai client, on a tiny random Llama converted
to CTranslate2 (a real uvicorn server on loopback; the conversion takes a second or two)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import openai
import pytest
from test_serve_support import PROMPTS, chat, save_sharpened, serving_converted

from genlab.errors import InvalidValueError
from genlab.generation import GenerationEngine, GenerationSettings
from genlab.models.load import load_model
from genlab.models.tiny import tiny_model
from genlab.serving.backend import Backend
from genlab.serving.backends import get_backend
from genlab.serving.backends.ctranslate2_backend import CTranslate2Backend
from genlab.serving.backends.ctranslate2_model import ct2_model
from genlab.serving.config import ServeConfig

MODEL = "tiny"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama with sharpened attention (so a batching or masking bug changes the greedy tokens)."""
    loaded = tiny_model("causal", seed=7)
    return save_sharpened(loaded.model, loaded.tokenizer, tmp_path_factory.mktemp("ct2") / "tiny-base", 30)


@pytest.fixture(scope="module")
def server(base: Path, tmp_path_factory: pytest.TempPathFactory):
    with serving_converted(base, "ctranslate2", tmp_path_factory.mktemp("jobs")) as url_and_backend:  # converts as `genlab serve` does
        yield url_and_backend


@pytest.fixture(scope="module")
def served(server) -> str:
    """The id the server answers to: the folder it was given, as genlab serve names a model folder."""
    return server[1].model_id


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server[0] + "/v1", api_key="none", max_retries=0, timeout=60)


def test_it_is_a_registered_backend_serving_the_converted_folder(server, base: Path) -> None:
    _, backend = server
    assert isinstance(backend, Backend) and isinstance(backend, CTranslate2Backend)
    assert get_backend("ctranslate2") is CTranslate2Backend
    assert (backend.model_path / "model.bin").is_file() and backend.converted.quantization == "int8"
    assert backend.context_window == load_model(str(base)).context_window
    again = ct2_model(str(base))  # converted once: the same folder, not written again
    assert again.folder == backend.model_path
    assert (backend.model_path / "model.bin").stat().st_mtime_ns == (again.folder / "model.bin").stat().st_mtime_ns


def test_float32_conversion_gives_transformers_greedy_tokens(base: Path, tmp_path: Path) -> None:
    """The reference is genlab's own engine on the transformers model; CTranslate2 in float32 must agree."""
    converted = ct2_model(str(base), "float32", store=tmp_path)
    backend = CTranslate2Backend(str(converted.folder), threads=1, max_batch=4, model_id=MODEL)
    try:
        engine = GenerationEngine(load_model(str(base)), batch_size=1)
        settings = GenerationSettings(max_new_tokens=12)
        expected = [c.choices[0].token_ids for c in engine.generate(PROMPTS, settings)]
        handles = [backend.submit(MODEL, prompt, settings) for prompt in PROMPTS]
        got = [tuple(h.result(timeout=60).choices[0].token_ids) for h in handles]
    finally:
        backend.close()
    assert got == [tuple(ids) for ids in expected]


def test_chat_streams_the_same_answer_with_exact_usage(server, client, served) -> None:
    _, backend = server
    answer = chat(client, served, PROMPTS[1], max_tokens=20, temperature=0)
    prompt = backend.format_chat([{"role": "user", "content": PROMPTS[1]}])
    assert answer.usage.prompt_tokens == backend.count_tokens(prompt, formatted=True)
    direct = backend.submit(served, prompt, GenerationSettings(max_new_tokens=20), formatted=True).result(timeout=60)
    assert answer.choices[0].message.content == direct.text
    assert answer.usage.completion_tokens == direct.completion_tokens == len(direct.choices[0].token_ids)
    stream = chat(client, served, PROMPTS[1], max_tokens=20, temperature=0, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == direct.text
    assert chunks[-1].usage.completion_tokens == answer.usage.completion_tokens


def test_concurrent_requests_are_batched_and_answer_as_one_at_a_time(server, client, served) -> None:
    _, backend = server
    alone = [client.completions.create(model=served, prompt=p, max_tokens=10, temperature=0).choices[0].text for p in PROMPTS]
    batches_before = backend.decode_stats()
    together: list[str | None] = [None] * len(PROMPTS)

    def ask(index: int) -> None:
        together[index] = client.completions.create(model=served, prompt=PROMPTS[index], max_tokens=10, temperature=0).choices[0].text

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(PROMPTS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert together == alone
    batches, rows = (after - before for after, before in zip(backend.decode_stats(), batches_before))
    assert rows == len(PROMPTS) and batches <= rows


def test_completions_n_max_tokens_and_stop(client, served) -> None:
    several = client.completions.create(model=served, prompt=[PROMPTS[0], PROMPTS[2]], max_tokens=8, temperature=0)
    assert [c.index for c in several.choices] == [0, 1]
    assert all(c.finish_reason == "length" for c in several.choices)
    assert several.usage.completion_tokens == 2 * 8
    whole = several.choices[0].text
    stop = whole[len(whole) // 2 : len(whole) // 2 + 2]
    assert stop.strip(), f"the answer {whole!r} has no text to stop at"
    cut = client.completions.create(model=served, prompt=PROMPTS[0], max_tokens=8, temperature=0, stop=[stop])
    assert cut.choices[0].text == whole[: whole.find(stop)] and cut.choices[0].finish_reason == "stop"


def test_sampling_settings_are_taken(client, served) -> None:
    sampled = client.completions.create(model=served, prompt=PROMPTS[3], max_tokens=8, temperature=1.5, top_p=0.9, n=3,
                                        extra_body={"top_k": 20, "repetition_penalty": 1.2})  # fmt: skip
    assert len(sampled.choices) == 3 and 3 <= sampled.usage.completion_tokens <= 3 * 8
    assert len({c.text for c in sampled.choices}) > 1  # three samples at temperature 1.5 are not all the same


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"logit_bias": {"5": 10}}, "logit_bias"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, "tools"),
    ],
)
def test_fields_it_cannot_honour_are_a_400_naming_them(server, served, extra: dict, param: str) -> None:
    body = {"model": served, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **extra}
    response = httpx.post(server[0] + "/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and "ctranslate2" in error["message"]


def test_a_seed_with_sampling_is_refused_in_one_sentence(client, served) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        chat(client, served, "hi", max_tokens=4, temperature=0.7, seed=3)
    assert "seed" in caught.value.message and "ctranslate2" in caught.value.message
    assert chat(client, served, "hi", max_tokens=4, temperature=0, seed=3).choices[0].message.content is not None


def test_bad_models_and_adapters_are_one_sentence(base: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidValueError, match="adapters are served by the genlab backend only"):
        ServeConfig(model=str(base), backend="ctranslate2", adapters={"a": str(tmp_path)})
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(InvalidValueError, match="llama.cpp"):
        ct2_model(str(gguf))
    optimized = tmp_path / "int8"
    optimized.mkdir()
    (optimized / "config.json").write_text((base / "config.json").read_text())
    (optimized / "genlab_optimized.json").write_text(json.dumps({"method": "int8-dynamic", "loader": "int8-dynamic"}))
    with pytest.raises(InvalidValueError, match="only genlab's engine reads"):
        ct2_model(str(optimized))
    with pytest.raises(InvalidValueError, match="quantization='int4' is not allowed"):
        ct2_model(str(base), "int4")


def test_the_deploy_stage_serves_a_merged_model_with_ctranslate2_and_adapters_with_genlab(base: Path, tmp_path: Path) -> None:
    from genlab.pipeline.candidates import Candidate
    from genlab.pipeline.stages.deploy import serving_backend

    plain = serving_backend(tmp_path / "a", {"model": str(base), "adapters": {}}, Candidate("base", str(base)))
    assert plain[0] == "ctranslate2" and (Path(plain[1]) / "model.bin").is_file() and Path(plain[1]).is_relative_to(tmp_path / "a")
    with_adapter = serving_backend(tmp_path / "b", {"model": str(base), "adapters": {"x": str(tmp_path)}}, Candidate("x", str(base)))
    assert with_adapter[:2] == ("genlab", None) and "adapter" in with_adapter[2]
    # An optimised folder only genlab's engine reads: CTranslate2 quantises the candidate's own weights.
    optimized = tmp_path / "int8"
    optimized.mkdir()
    (optimized / "genlab_optimized.json").write_text(json.dumps({"method": "int8-dynamic", "loader": "int8-dynamic"}))
    quantised = serving_backend(tmp_path / "c", {"model": str(optimized), "adapters": {}}, Candidate("base", str(base)))
    assert quantised[0] == "ctranslate2" and "int8-dynamic" in quantised[2]
    assert json.loads((Path(quantised[1]) / "genlab-ctranslate2.json").read_text())["source"] == str(base)
