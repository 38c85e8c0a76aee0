"""Providers: the OpenAI-compatible client against a local fake server (retries, timeout, 401,
unreachable), the hashing fake embedder, the local engine on a tiny random model, the real embedder pack."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from genlab.apps.providers import HashingEmbedder, ProviderError, ScriptedProvider, get_embedder, get_provider
from genlab.apps.providers.openai_compat import Endpoint, OpenAICompatEmbedder, OpenAICompatProvider
from genlab.errors import InvalidValueError


class FakeOpenAI:
    """A tiny OpenAI-compatible server: its ``plan`` says how to answer each request in turn."""

    def __init__(self) -> None:
        self.plan: list[Any] = []  # per request: "ok", an HTTP status int, or ("sleep", seconds)
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (the http.server API)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, **body})
                fake.headers.append(dict(self.headers))
                step = fake.plan.pop(0) if fake.plan else "ok"
                if isinstance(step, tuple) and step[0] == "sleep":
                    time.sleep(step[1])
                    step = "ok"
                if step == "ok":
                    self._send(200, fake.answer(self.path, body))
                else:
                    extra = {"Retry-After": "0"} if step == 429 else {}
                    self._send(step, {"error": {"message": f"status {step} on purpose"}}, extra)

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda request, address: None  # the timeout test hangs up on purpose
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def answer(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/v1/chat/completions":
            return {"choices": [{"message": {"role": "assistant", "content": "Paris. STOP here"}}]}
        if path == "/v1/completions":
            return {"choices": [{"text": " continued"}]}
        if path == "/v1/embeddings":  # returned in reverse order: the client must sort by index
            rows = [{"index": i, "embedding": [float(len(t)), 1.0, 0.0]} for i, t in enumerate(body["input"])]
            return {"data": rows[::-1]}
        return {}


@pytest.fixture
def fake_server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def fast(fake: FakeOpenAI, **options: Any) -> OpenAICompatProvider:
    return OpenAICompatProvider("tiny", base_url=fake.url, api_key="sk-test", backoff=0.01, timeout=2, **options)


def test_chat_completion_sends_the_prompt_key_and_settings_and_cuts_at_stop(fake_server: FakeOpenAI) -> None:
    provider = fast(fake_server)
    assert provider.complete("Capital of France?", max_tokens=7, stop=["STOP"]) == "Paris. "
    request = fake_server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["messages"] == [{"role": "user", "content": "Capital of France?"}]
    assert request["max_tokens"] == 7 and request["model"] == "tiny" and request["stop"] == ["STOP"]
    assert fake_server.headers[0]["Authorization"] == "Bearer sk-test"


def test_completions_api_for_base_models(fake_server: FakeOpenAI) -> None:
    assert fast(fake_server, api="completions").complete("Once") == " continued"
    assert fake_server.requests[0]["path"] == "/v1/completions" and fake_server.requests[0]["prompt"] == "Once"


def test_server_errors_and_rate_limits_are_retried_then_succeed(fake_server: FakeOpenAI) -> None:
    fake_server.plan = [503, 429, "ok"]
    assert fast(fake_server, retries=3).complete("hi").startswith("Paris")
    assert len(fake_server.requests) == 3


def test_retries_give_up_with_one_sentence(fake_server: FakeOpenAI) -> None:
    fake_server.plan = [500, 500, 500]
    with pytest.raises(ProviderError, match=r"HTTP 500: status 500 on purpose \(3 attempts\)"):
        fast(fake_server, retries=2).complete("hi")
    assert len(fake_server.requests) == 3


def test_a_bad_key_fails_at_once_and_says_so(fake_server: FakeOpenAI) -> None:
    fake_server.plan = [401]
    with pytest.raises(ProviderError, match="rejected the API key \\(HTTP 401.*OPENAI_API_KEY") as error:
        fast(fake_server, retries=3).complete("hi")
    assert len(fake_server.requests) == 1  # never retried
    assert "\n" not in str(error.value)


def test_other_client_errors_are_not_retried(fake_server: FakeOpenAI) -> None:
    fake_server.plan = [404]
    with pytest.raises(ProviderError, match="refused the request \\(HTTP 404"):
        fast(fake_server).complete("hi")
    assert len(fake_server.requests) == 1


def test_timeout_is_retried_and_reported(fake_server: FakeOpenAI) -> None:
    fake_server.plan = [("sleep", 0.6), ("sleep", 0.6)]
    provider = OpenAICompatProvider("tiny", base_url=fake_server.url, timeout=0.15, retries=1, backoff=0.01)
    started = time.perf_counter()
    with pytest.raises(ProviderError, match="did not answer within 0.15 s \\(2 attempts\\)"):
        provider.complete("hi")
    assert time.perf_counter() - started < 2


def test_unreachable_endpoint_fails_fast_with_one_sentence() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = OpenAICompatProvider("tiny", base_url=f"http://127.0.0.1:{port}/v1", retries=2, backoff=0.01, timeout=1)
    started = time.perf_counter()
    with pytest.raises(ProviderError, match="cannot use the OpenAI-compatible endpoint .*connection was refused \\(3 attempts\\)"):
        provider.complete("hi")
    assert time.perf_counter() - started < 3


def test_remote_embeddings_are_ordered_and_unit_length(fake_server: FakeOpenAI) -> None:
    embedder = OpenAICompatEmbedder("emb", base_url=fake_server.url, batch_size=2, backoff=0.01)
    vectors = embedder.embed(["a", "bbb", "cc"])
    assert vectors.shape == (3, 3) and embedder.dim == 3
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    # The fake embeds a text as (len, 1, 0): order kept despite the reversed reply, over two requests.
    np.testing.assert_allclose(vectors[1], np.array([3.0, 1.0, 0.0]) / np.sqrt(10), rtol=1e-6)
    assert [len(r["input"]) for r in fake_server.requests] == [2, 1]


def test_endpoint_from_environment_genlab_variables_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://other:1/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("GENLAB_OPENAI_BASE_URL", "http://mine:2/v1/")
    endpoint = Endpoint.resolve()
    assert endpoint.base_url == "http://mine:2/v1" and endpoint.api_key == "sk-openai"
    assert Endpoint.resolve("http://arg:3/v1", "sk-arg").api_key == "sk-arg"
    with pytest.raises(ProviderError, match="must start with http"):
        Endpoint.resolve("localhost:8000")


def test_get_provider_and_embedder_dispatch_on_the_spec(fake_server: FakeOpenAI) -> None:
    provider = get_provider("openai:tiny", base_url=fake_server.url)
    assert isinstance(provider, OpenAICompatProvider) and provider.name == "openai:tiny"
    assert isinstance(get_embedder("hashing-64"), HashingEmbedder) and get_embedder("hashing-64").dim == 64
    with pytest.raises(InvalidValueError, match="embedder 'hashing-x' is not allowed"):
        get_embedder("hashing-x")


def test_hashing_embedder_is_deterministic_unit_length_and_word_sensitive() -> None:
    embedder = HashingEmbedder(128)
    a, b, c = embedder.embed(["Refunds are paid to the card", "refunds paid card", "The office opens at nine"])
    np.testing.assert_allclose(embedder.embed(["Refunds are paid to the card"])[0], a)
    np.testing.assert_allclose([np.linalg.norm(a), np.linalg.norm(c)], 1.0, rtol=1e-6)
    assert a @ b > 0.5 > abs(a @ c)
    assert embedder.token_offsets("Hi, you.") == [(0, 2), (2, 3), (4, 7), (7, 8)]


def test_scripted_provider_replies_in_order_and_runs_out_loudly() -> None:
    provider = ScriptedProvider(["one END two", "three"])
    assert provider.complete("a", stop=["END"]) == "one "
    assert provider.complete("b") == "three"
    with pytest.raises(ProviderError, match="only 2 replies"):
        provider.complete("c")
    assert provider.prompts == ["a", "b", "c"]


def test_local_provider_generates_through_the_engine_on_a_tiny_model() -> None:
    from genlab.apps.providers.local import LocalProvider
    from genlab.generation.api import engine_for
    from genlab.generation import GenerationSettings
    from genlab.models.tiny import tiny_model

    loaded = tiny_model("causal", seed=3)
    provider = LocalProvider(loaded, chat=False)
    text = provider.complete("hello world", max_tokens=5)
    expected = engine_for(loaded).generate("hello world", GenerationSettings(max_new_tokens=5))[0].text
    assert text == expected  # the same greedy answer as the engine itself gives
    assert provider.count_tokens("hello world") == len(loaded.tokenizer("hello world")["input_ids"])
    assert provider.context_window == loaded.context_window


def test_default_embedder_pack_embeds_384_dims_and_tokenizes_long_texts_whole() -> None:
    embedder = get_embedder()
    vectors = embedder.embed(["A cat sat on the mat.", "A kitten rested on the rug.", "Quarterly tax filing deadline."])
    assert vectors.shape == (3, 384) and embedder.dim == 384 and embedder.max_tokens == 254
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    text = "word " * 1000
    offsets = embedder.token_offsets(text)
    assert len(offsets) == 1000 and offsets[-1] == (4995, 4999)  # no truncation at the model's window
