"""`genlab serve --backend onnxruntime-genai` through the official openai client, on a tiny random Llama
converted by ONNX Runtime GenAI's model builder (a real uvicorn server on loopback; converting takes a
few seconds). The tiny model has 16-wide attention heads: ORT's GroupQueryAttention kernel on CPU
takes head sizes that are multiples of 16 only (genlab's tiny_model has 8)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import jsonschema
import openai
import pytest
import torch
from test_serve_support import PROMPTS, chat, save_sharpened, serving_converted

from genlab.errors import InvalidValueError
from genlab.generation import GenerationEngine, GenerationSettings
from genlab.models.load import load_model
from genlab.models.tiny import tiny_model, tiny_tokenizer
from genlab.serving.app import make_backend
from genlab.serving.backend import Backend
from genlab.serving.backends import get_backend
from genlab.serving.backends.ort_genai_backend import OrtGenaiBackend
from genlab.serving.backends.ort_genai_model import ort_model
from genlab.serving.config import ServeConfig

MODEL = "tiny"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama (head size 16) with sharpened attention, so a batching or masking bug changes greedy tokens."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    tokenizer = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )  # fmt: skip
    torch.manual_seed(7)
    model = AutoModelForCausalLM.from_config(config)
    return save_sharpened(model, tokenizer, tmp_path_factory.mktemp("ort") / "tiny-base", 20)


@pytest.fixture(scope="module")
def server(base: Path, tmp_path_factory: pytest.TempPathFactory):
    with serving_converted(base, "onnxruntime-genai", tmp_path_factory.mktemp("jobs")) as url_and_backend:  # converts as `genlab serve` does
        yield url_and_backend


@pytest.fixture(scope="module")
def served(server) -> str:
    return server[1].model_id


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server[0] + "/v1", api_key="none", max_retries=0, timeout=60)


def test_it_is_a_registered_backend_serving_the_converted_folder(server, base: Path) -> None:
    _, backend = server
    assert isinstance(backend, Backend) and isinstance(backend, OrtGenaiBackend)
    assert get_backend("onnxruntime-genai") is OrtGenaiBackend
    assert (backend.model_path / "model.onnx").is_file() and backend.converted.precision == "int8"
    assert (backend.model_path / "chat_template.jinja").is_file() or "chat_template" in (backend.model_path / "tokenizer_config.json").read_text()
    assert backend.context_window == 2048
    again = ort_model(str(base))  # converted once: the same folder, not written again
    assert again.folder == backend.model_path
    assert (backend.model_path / "model.onnx").stat().st_mtime_ns == (again.folder / "model.onnx").stat().st_mtime_ns


def test_fp32_conversion_gives_transformers_greedy_tokens(base: Path, tmp_path: Path) -> None:
    """The reference is genlab's own engine on the transformers model; ORT GenAI in fp32 must agree, batched."""
    converted = ort_model(str(base), "fp32", store=tmp_path)
    backend = OrtGenaiBackend(str(converted.folder), threads=1, max_batch=4, model_id=MODEL)
    try:
        engine = GenerationEngine(load_model(str(base)), batch_size=1)
        settings = GenerationSettings(max_new_tokens=12)
        expected = [tuple(c.choices[0].token_ids) for c in engine.generate(PROMPTS[:4], settings)]
        handles = [backend.submit(MODEL, prompt, settings) for prompt in PROMPTS[:4]]
        got = [tuple(h.result(timeout=60).choices[0].token_ids) for h in handles]
    finally:
        backend.close()
    assert got == expected


def test_a_lone_request_runs_solo_and_a_burst_spreads_over_the_lanes_with_the_same_answers(base: Path) -> None:
    folder = str(ort_model(str(base)).folder)
    one = OrtGenaiBackend(folder, threads=1, max_batch=4, model_id=MODEL)
    two = OrtGenaiBackend(folder, threads=2, max_batch=4, model_id=MODEL)  # two lanes, a solo engine on both threads
    settings = GenerationSettings(max_new_tokens=10)
    try:
        assert (one.lanes, two.lanes, two.lane_batch) == (1, 2, 2)
        expected = [one.submit(MODEL, prompt, settings).result(timeout=60).text for prompt in PROMPTS[:4]]  # one at a time
        assert two.submit(MODEL, PROMPTS[0], settings).result(timeout=60).text == expected[0]
        alone = two.engine_stats()
        assert alone["solo"][0] > 0 and alone["lane 0"] == alone["lane 1"] == (0, 0)
        with two._wake:  # the dispatcher sees all four at once (the clients of a burst arrive within its window)
            handles = [two.submit(MODEL, prompt, settings) for prompt in PROMPTS[:4]]
        assert [h.result(timeout=60).text for h in handles] == expected
        burst = two.engine_stats()
        assert burst["solo"] == alone["solo"]  # nothing of a burst runs on the solo engine
        assert [burst[f"lane {i}"][1] / burst[f"lane {i}"][0] for i in (0, 1)] == [2, 2]  # two rows per step in each lane
        two.unload()  # scale to zero: the weights go; the next request loads them again
        assert not two.loaded
        assert two.submit(MODEL, PROMPTS[1], settings).result(timeout=60).text == expected[1] and two.loaded
    finally:
        one.close()
        two.close()
    with pytest.raises(InvalidValueError, match="lanes=3 is not allowed"):
        OrtGenaiBackend(folder, threads=2, lanes=3)
    # `genlab serve --lanes 1`: one engine on both threads, the model loaded once
    served = make_backend(ServeConfig(model=folder, backend="onnxruntime-genai", threads=2, lanes=1, embedder="hashing-8", record_lineage=False))
    try:
        assert served.lanes == 1 and served.threads == 2 and served._weights.solo is None
    finally:
        served.close()


def test_a_request_sent_while_a_long_answer_decodes_solo_does_not_wait_for_it(base: Path) -> None:
    backend = OrtGenaiBackend(str(ort_model(str(base)).folder), threads=2, max_batch=4, model_id=MODEL)
    try:
        long = backend.submit(MODEL, PROMPTS[0], GenerationSettings(max_new_tokens=1500))
        next(iter(long))  # it is decoding, alone: on the solo engine
        short = backend.submit(MODEL, PROMPTS[1], GenerationSettings(max_new_tokens=4)).result(timeout=60)
        assert not long.done  # the short answer did not wait for the long one
        answer = long.result(timeout=120).choices[0]
        stats = backend.engine_stats()
        assert stats["solo"][1] == answer.completion_tokens and stats["lane 1"][1] == short.completion_tokens > 0
    finally:
        backend.close()


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


def test_four_concurrent_greedy_requests_answer_as_one_at_a_time(server, client, served) -> None:
    prompts = PROMPTS[:4]
    alone = [client.completions.create(model=served, prompt=p, max_tokens=10, temperature=0).choices[0].text for p in prompts]
    together: list[str | None] = [None] * len(prompts)

    def ask(index: int) -> None:
        together[index] = client.completions.create(model=served, prompt=prompts[index], max_tokens=10, temperature=0).choices[0].text

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert together == alone


def test_the_rows_of_a_request_decode_in_one_batch(server, served) -> None:
    """Three choices sampled with top_k=1 are three equal rows: one engine step must decode all three."""
    _, backend = server
    before = backend.decode_stats()
    settings = GenerationSettings(max_new_tokens=6, num_return_sequences=3, temperature=1.0, top_k=1)
    result = backend.submit(served, PROMPTS[0], settings).result(timeout=60)
    tokens = {c.completion_tokens for c in result.choices}
    assert len(tokens) == 1 and len({c.text for c in result.choices}) == 1
    steps, rows = (after - earlier for after, earlier in zip(backend.decode_stats(), before))
    assert rows == 3 * steps and steps in (min(tokens), min(tokens) + 1)  # + 1: the end-of-sequence step


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
    streamed = client.completions.create(model=served, prompt=PROMPTS[0], max_tokens=8, temperature=0, stop=[stop], stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == cut.choices[0].text


def test_sampling_settings_are_taken(client, served) -> None:
    sampled = client.completions.create(model=served, prompt=PROMPTS[3], max_tokens=8, temperature=1.5, top_p=0.9, n=3,
                                        extra_body={"top_k": 20, "repetition_penalty": 1.2})  # fmt: skip
    assert len(sampled.choices) == 3 and 3 <= sampled.usage.completion_tokens <= 3 * 8
    assert len({c.text for c in sampled.choices}) > 1  # three samples at temperature 1.5 are not all the same


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"logprobs": True}, "logprobs"), ({"presence_penalty": 0.5}, "presence_penalty"), ({"logit_bias": {"5": 10}}, "logit_bias")],
)
def test_fields_it_cannot_honour_are_a_400_naming_them(server, served, extra: dict, param: str) -> None:
    body = {"model": served, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **extra}
    response = httpx.post(server[0] + "/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and "onnxruntime-genai" in error["message"]


def test_a_seed_with_sampling_is_refused_in_one_sentence(client, served) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        chat(client, served, "hi", max_tokens=4, temperature=0.7, seed=3)
    assert "seed" in caught.value.message and "onnxruntime-genai" in caught.value.message
    assert chat(client, served, "hi", max_tokens=4, temperature=0, seed=3).choices[0].message.content is not None


SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 12}, "days": {"type": "integer"}, "ok": {"type": "boolean"}},
    "required": ["city", "days", "ok"],
    "additionalProperties": False,
}


def test_a_json_schema_answer_parses_and_matches_the_schema(client, served) -> None:
    """A random model writes JSON only because the grammar allows nothing else (llguidance, through set_guidance)."""
    form = {"type": "json_schema", "json_schema": {"name": "trip", "schema": SCHEMA}}
    answer = chat(client, served, PROMPTS[0], max_tokens=80, temperature=0, response_format=form)
    assert answer.choices[0].finish_reason == "stop", answer.choices[0].message.content
    jsonschema.validate(json.loads(answer.choices[0].message.content), SCHEMA)
    anything = chat(client, served, PROMPTS[2], max_tokens=80, temperature=0.8, response_format={"type": "json_object"})
    if anything.choices[0].finish_reason == "stop":  # a random model may ramble past max_tokens inside a string
        assert isinstance(json.loads(anything.choices[0].message.content), dict)


def test_a_named_tool_call_has_arguments_matching_its_schema(client, served) -> None:
    tool = {"type": "function", "function": {"name": "book", "parameters": SCHEMA}}
    answer = chat(client, served, PROMPTS[1], max_tokens=120, temperature=0, tools=[tool],
                   tool_choice={"type": "function", "function": {"name": "book"}})  # fmt: skip
    calls = answer.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "book", answer.choices[0].message
    jsonschema.validate(json.loads(calls[0].function.arguments), SCHEMA)


def test_bad_models_and_adapters_are_one_sentence(base: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidValueError, match="merge the adapter"):
        OrtGenaiBackend(str(base), adapters={"a": str(tmp_path)})
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(InvalidValueError, match="onnxruntime-genai backend converts model folders"):
        ort_model(str(gguf))
    optimized = tmp_path / "int8"
    optimized.mkdir()
    (optimized / "config.json").write_text((base / "config.json").read_text())
    (optimized / "genlab_optimized.json").write_text(json.dumps({"method": "int8-dynamic", "loader": "int8-dynamic"}))
    with pytest.raises(InvalidValueError, match="only genlab's engine reads"):
        ort_model(str(optimized))
    with pytest.raises(InvalidValueError, match="precision='int2' is not allowed"):
        ort_model(str(base), "int2")
    narrow = tmp_path / "narrow"  # genlab's tiny_model: 8-wide heads, which ORT's CPU attention cannot run
    tiny_model("causal").model.save_pretrained(narrow)
    with pytest.raises(InvalidValueError, match="heads of size 8"):
        ort_model(str(narrow))


def test_the_deploy_stage_picks_onnxruntime_genai_then_ctranslate2_then_genlab(base: Path, tmp_path: Path) -> None:
    from genlab.pipeline.candidates import Candidate
    from genlab.pipeline.stages.deploy import serving_backend

    plain = serving_backend(tmp_path / "a", {"model": str(base), "adapters": {}}, Candidate("base", str(base)))
    assert plain[0] == "onnxruntime-genai" and (Path(plain[1]) / "model.onnx").is_file()
    assert Path(plain[1]).is_relative_to(tmp_path / "a") and "int8" in plain[2]
    chosen = serving_backend(tmp_path / "b", {"model": str(base), "adapters": {}}, Candidate("base", str(base)), "ctranslate2")
    assert chosen[0] == "ctranslate2" and (Path(chosen[1]) / "model.bin").is_file()
    narrow = tmp_path / "narrow"
    loaded = tiny_model("causal")
    loaded.model.save_pretrained(narrow)
    loaded.tokenizer.save_pretrained(narrow)
    fallback = serving_backend(tmp_path / "c", {"model": str(narrow), "adapters": {}}, Candidate("base", str(narrow)))
    assert fallback[0] == "ctranslate2"
    with_adapter = serving_backend(tmp_path / "d", {"model": str(base), "adapters": {"x": str(tmp_path)}}, Candidate("x", str(base)))
    assert with_adapter[:2] == ("genlab", None)


def test_a_grammar_the_engine_refuses_fails_that_request_alone(server, client, served) -> None:
    body = {"model": served, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "structured_outputs": {"regex": "(a"}}
    response = httpx.post(server[0] + "/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400, response.text
    assert "ONNX Runtime GenAI refused the request" in response.json()["error"]["message"]
    assert chat(client, served, "hi", max_tokens=4, temperature=0).choices[0].finish_reason in ("stop", "length")
