"""`genlab serve`'s API through the official openai client, against a real uvicorn server on loopback.

The server runs a tiny random model with two LoRA adapters (and a soft-prompt one); embeddings use
the hashing embedder. Errors are checked for their status, OpenAI's error shape and the field named.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_serve_support import PROMPTS, make_tiny_assets, running_server, wait_for

from genlab.serving.app import create_app
from genlab.serving.config import ServeConfig
from genlab.serving.genlab_backend import GenlabBackend

KEY = "test-key-123"


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory):
    return make_tiny_assets(tmp_path_factory.getbasetemp() / "serve-assets")


@pytest.fixture(scope="module")
def server(assets, tmp_path_factory: pytest.TempPathFactory):
    adapters = {"alpha": str(assets.adapters["alpha"]), "beta": str(assets.adapters["beta"])}
    config = ServeConfig(
        model="tiny", adapters=adapters, api_key=KEY, embedder="hashing-32", max_concurrent=4, max_tokens_limit=300,
        max_body_bytes=4096, jobs_db=tmp_path_factory.mktemp("jobs") / "jobs.sqlite", max_n=3,
    )  # fmt: skip
    backend = GenlabBackend(str(assets.base), adapters, max_batch=4, model_id="tiny")
    with running_server(create_app(config, backend=backend)) as url:
        yield url


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0, timeout=60)


def raw(server: str, method: str, path: str, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {KEY}", **kwargs.pop("headers", {})}
    return httpx.request(method, server + path, headers=headers, timeout=60, **kwargs)


def metrics(server: str) -> dict[tuple[str, tuple], float]:
    text = raw(server, "GET", "/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


# --- the openai client -------------------------------------------------------------------------------


def test_models_lists_the_base_its_adapters_and_the_embedder(client) -> None:
    models = {m.id: m for m in client.models.list().data}
    assert list(models) == ["tiny", "alpha", "beta", "hashing-32"]
    assert models["alpha"].parent == "tiny" and models["beta"].parent == "tiny"  # vLLM's way of listing adapters
    assert client.models.retrieve("beta").id == "beta"


def test_chat_on_the_base_and_both_adapters_greedy_and_repeatable(client) -> None:
    answers = {}
    for model in ("tiny", "alpha", "beta"):
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": PROMPTS[0]}], max_tokens=12, temperature=0
        )
        again = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": PROMPTS[0]}], max_tokens=12, temperature=0
        )
        assert reply.object == "chat.completion" and reply.model == model
        assert reply.choices[0].message.role == "assistant" and reply.choices[0].finish_reason in ("stop", "length")
        assert reply.choices[0].message.content == again.choices[0].message.content
        usage = reply.usage
        assert usage.completion_tokens >= 1 and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
        answers[model] = reply.choices[0].message.content
    assert len(set(answers.values())) == 3  # each adapter answers differently from the base


def test_completions_several_prompts_and_choices_with_seed(client) -> None:
    kwargs = dict(model="alpha", prompt=PROMPTS[:2], max_tokens=6, temperature=1.2, n=2, seed=3)
    first = client.completions.create(**kwargs)
    second = client.completions.create(**kwargs)
    assert [c.index for c in first.choices] == [0, 1, 2, 3]
    assert [c.text for c in first.choices] == [c.text for c in second.choices]  # seeded: the same samples
    assert first.choices[0].text != first.choices[1].text  # two samples of one prompt
    assert first.usage.completion_tokens <= 4 * 6


def test_streaming_chat_adds_up_to_the_same_answer_and_ends_with_usage(client) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPTS[1]}]
    whole = client.chat.completions.create(model="beta", messages=messages, max_tokens=15, temperature=0)
    stream = client.chat.completions.create(
        model="beta", messages=messages, max_tokens=15, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # it came in pieces
    assert text == whole.choices[0].message.content
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [whole.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_streaming_completion_sends_done_last(server) -> None:
    body = {"model": "tiny", "prompt": PROMPTS[2], "max_tokens": 5, "temperature": 0, "stream": True}
    with httpx.stream("POST", server + "/v1/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_embeddings_are_unit_vectors_of_the_embedder(client) -> None:
    result = client.embeddings.create(model="hashing-32", input=["the parcel arrived", "the parcel left", "museum"])
    vectors = [item.embedding for item in result.data]  # the client asks for base64 and decodes it
    assert [item.index for item in result.data] == [0, 1, 2] and all(len(v) == 32 for v in vectors)
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5) for v in vectors)
    close = sum(a * b for a, b in zip(vectors[0], vectors[1], strict=True))
    far = sum(a * b for a, b in zip(vectors[0], vectors[2], strict=True))
    assert close > far and result.usage.prompt_tokens == 3 + 3 + 1
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="tiny", input="x")


# --- errors ------------------------------------------------------------------------------------------


def _error(response: httpx.Response, status: int, param: str | None = None, code: str | None = None) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if param is not None:
        assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    return error["message"]


@pytest.mark.parametrize(
    ("body", "status", "param", "code", "words"),
    [
        ({"model": "gamma", "prompt": "Hi"}, 404, "model", "model_not_found", ["gamma", "tiny, alpha, beta"]),
        ({"model": "tiny", "prompt": "Hi", "max_tokens": 0}, 400, "max_tokens", "unsupported_parameter", ["echo=true"]),
        ({"model": "tiny", "prompt": "Hi", "max_tokens": -1}, 400, "max_tokens", "invalid_value", ["greater than or equal to 0"]),
        ({"model": "tiny", "prompt": "Hi", "max_tokens": 301}, 400, "max_tokens", "max_tokens_too_large", ["301", "300"]),
        ({"model": "tiny", "prompt": "word " * 300, "max_tokens": 250}, 400, "max_tokens", "context_length_exceeded", ["512"]),
        ({"model": "tiny", "prompt": "Hi", "temperature": 3}, 400, "temperature", "invalid_value", ["less than or equal to 2"]),
        ({"model": "tiny", "prompt": "Hi", "n": 4, "temperature": 1}, 400, "n", None, ["n=4", "3"]),
        ({"model": "tiny", "prompt": "Hi", "n": 2, "temperature": 0}, 400, "n", None, ["sampling"]),
        ({"model": "tiny", "prompt": ""}, 400, "prompt", None, ["empty"]),
        ({"model": "tiny", "prompt": "Hi", "logprobs": 21}, 400, "logprobs", "invalid_value", ["less than or equal to 20"]),
        ({"model": "tiny", "prompt": "Hi", "stop": ["a", "b", "c", "d", "e"]}, 400, "stop", "invalid_value", ["at most 4"]),
        ({"prompt": "Hi"}, 400, "model", "missing_field", ["model is required"]),
    ],
)
def test_bad_completion_requests_get_a_clear_4xx(server, body, status, param, code, words) -> None:
    message = _error(raw(server, "POST", "/v1/completions", json=body), status, param, code)
    for word in words:
        assert word in message


def test_chat_longer_than_the_window_and_bad_json_and_wrong_types(server) -> None:
    long_chat = {"model": "tiny", "messages": [{"role": "user", "content": "word " * 520}]}
    assert "512" in _error(raw(server, "POST", "/v1/chat/completions", json=long_chat), 400, "messages", "context_length_exceeded")
    bad = raw(server, "POST", "/v1/chat/completions", content=b'{"model": "tiny", ', headers={"content-type": "application/json"})
    assert "not valid JSON" in _error(bad, 400, code="invalid_json")
    not_object = raw(server, "POST", "/v1/chat/completions", json=[1, 2])
    assert "JSON object" in _error(not_object, 400)
    no_messages = raw(server, "POST", "/v1/chat/completions", json={"model": "tiny", "messages": []})
    _error(no_messages, 400, "messages")


def test_openai_client_raises_its_own_error_types(client) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "Hi"}])
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "word " * 520}])
    assert too_long.value.code == "context_length_exceeded"


def test_body_larger_than_the_limit_is_413(server) -> None:
    body = {"model": "tiny", "prompt": "x" * 5000}
    _error(raw(server, "POST", "/v1/completions", json=body), 413, code="payload_too_large")
    chunked = raw(server, "POST", "/v1/completions", content=iter([b'{"model": "tiny", "prompt": "', b"x" * 5000, b'"}']))
    _error(chunked, 413, code="payload_too_large")


def test_api_key_is_required_except_for_health_which_says_only_up_without_it(server) -> None:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}]}
    assert "API key" in _error(httpx.post(server + "/v1/chat/completions", json=body), 401, code="missing_api_key")
    wrong = httpx.get(server + "/v1/models", headers={"Authorization": "Bearer nope"})
    _error(wrong, 401, code="invalid_api_key")
    assert httpx.get(server + "/metrics").status_code == 401
    health = httpx.get(server + "/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}  # no models, adapters or load
    assert raw(server, "GET", "/health").json()["models"] == ["tiny", "alpha", "beta"]  # with the key: the details
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert httpx.get(server + path).status_code == 401, path
    assert raw(server, "GET", "/openapi.json").json()["info"]["title"] == "genlab"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server + "/v1", api_key="wrong", max_retries=0).models.list()


def test_rows_beyond_the_concurrency_limit_get_429_and_places_come_back(server) -> None:
    # Two choices each: two streams hold all 4 places (one per row), so a one-row request gets 429.
    body = {"model": "tiny", "prompt": PROMPTS[3], "max_tokens": 300, "temperature": 1, "n": 2, "seed": 1, "stream": True}
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(timeout=60) as one, httpx.Client(timeout=60) as two:
        with one.stream("POST", server + "/v1/completions", json=body, headers=headers) as first, \
                two.stream("POST", server + "/v1/completions", json=body, headers=headers) as second:  # fmt: skip
            assert first.status_code == second.status_code == 200
            third = raw(server, "POST", "/v1/completions", json={"model": "tiny", "prompt": "Hi", "max_tokens": 2})
            _error(third, 429, code="too_many_requests")
    # The clients went away: their places are free again and their rows left the batch.
    wait_for(lambda: raw(server, "GET", "/health").json()["requests_in_flight"] == 0, "the places to come back")
    again = raw(server, "POST", "/v1/completions", json={"model": "tiny", "prompt": "Hi", "max_tokens": 2})
    assert again.status_code == 200


# --- metrics and jobs --------------------------------------------------------------------------------


def test_metrics_count_requests_tokens_and_latency(server, client) -> None:
    before = metrics(server)
    reply = client.completions.create(model="alpha", prompt=PROMPTS[4], max_tokens=7, temperature=0)
    raw(server, "POST", "/v1/completions", json={"model": "nope", "prompt": "Hi"})
    after = metrics(server)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("genlab_requests_total", route="/v1/completions", method="POST", status="200") == 1
    assert grew("genlab_requests_total", route="/v1/completions", method="POST", status="404") == 1
    assert grew("genlab_prompt_tokens_total", model="alpha") == reply.usage.prompt_tokens
    assert grew("genlab_completion_tokens_total", model="alpha") == reply.usage.completion_tokens
    assert grew("genlab_request_seconds_count", route="/v1/completions") == 2
    # One row in one pass per token, plus the pass that produced end-of-sequence if it stopped there.
    ended_by_eos = reply.choices[0].finish_reason == "stop"
    assert grew("genlab_forward_rows_total") == reply.usage.completion_tokens + ended_by_eos
    for name in ("genlab_queue_depth", "genlab_model_loaded", "genlab_cold_starts_total", "genlab_cold_start_seconds_count"):
        assert (name, ()) in after
    assert after[("genlab_model_loaded", ())] == 1
    assert ("genlab_jobs", (("status", "queued"),)) in after


def test_jobs_run_the_same_request_as_the_real_time_route(server, client) -> None:
    request = {"model": "beta", "messages": [{"role": "user", "content": PROMPTS[5]}], "max_tokens": 9, "temperature": 0}
    accepted = raw(server, "POST", "/v1/jobs", json={"kind": "chat.completions", "request": request})
    assert accepted.status_code == 202 and accepted.json()["status"] == "queued"
    job_id = accepted.json()["id"]
    job = wait_for(lambda: (j := raw(server, "GET", f"/v1/jobs/{job_id}").json())["status"] in ("completed", "failed") and j,
                   "the job to finish")  # fmt: skip
    assert job["status"] == "completed" and job["error"] is None
    live = client.chat.completions.create(**request)
    assert job["result"]["choices"][0]["message"]["content"] == live.choices[0].message.content
    assert job["result"]["usage"]["completion_tokens"] == live.usage.completion_tokens


@pytest.mark.parametrize(
    ("submission", "status", "param"),
    [
        ({"kind": "completions", "request": {"model": "tiny", "prompt": "Hi", "max_tokens": -1}}, 400, "request.max_tokens"),
        ({"kind": "completions", "request": {"model": "zeta", "prompt": "Hi"}}, 404, "model"),
        ({"kind": "completions", "request": {"model": "tiny", "prompt": "Hi", "stream": True}}, 400, "request.stream"),
        ({"kind": "edits", "request": {}}, 400, "kind"),
    ],
)
def test_bad_jobs_are_refused_when_submitted(server, submission, status, param) -> None:
    _error(raw(server, "POST", "/v1/jobs", json=submission), status, param)


def test_unknown_job_is_404(server) -> None:
    _error(raw(server, "GET", "/v1/jobs/job-nope"), 404, code="job_not_found")


# --- scale to zero -----------------------------------------------------------------------------------


def test_idle_server_unloads_and_the_next_request_reloads_it(assets, tmp_path) -> None:
    config = ServeConfig(model="tiny", idle_unload=0.3, embedder="hashing-8", jobs_db=tmp_path / "jobs.sqlite", job_workers=0)
    backend = GenlabBackend(str(assets.base), model_id="tiny")
    with running_server(create_app(config, backend=backend)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
        ask = dict(model="tiny", prompt=PROMPTS[0], max_tokens=6, temperature=0)
        first = client.completions.create(**ask).choices[0].text
        # On a busy machine the watcher may already have unloaded the model once before the first request:
        # count the cold starts from here.
        before = _unlabelled_samples(httpx.get(url + "/metrics").text)
        wait_for(lambda: not httpx.get(url + "/health").json()["model_loaded"], "the idle model to unload")
        second = client.completions.create(**ask).choices[0].text
        assert second == first and httpx.get(url + "/health").json()["model_loaded"]
        after = _unlabelled_samples(httpx.get(url + "/metrics").text)
    assert after["genlab_cold_starts_total"] - before["genlab_cold_starts_total"] == 1  # the reload
    assert after["genlab_cold_start_seconds_count"] - before["genlab_cold_start_seconds_count"] == 1
    assert after["genlab_cold_start_seconds_sum"] > before["genlab_cold_start_seconds_sum"]


def _unlabelled_samples(text: str) -> dict[str, float]:
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


def test_the_endpoint_is_a_lineage_run_with_its_model_adapters_and_totals(assets, tmp_path) -> None:
    from genlab.lineage import LineageStore

    adapters = {"alpha": str(assets.adapters["alpha"])}
    config = ServeConfig(model="tiny", adapters=adapters, embedder="hashing-8", jobs_db=tmp_path / "j.sqlite", job_workers=0)
    with running_server(create_app(config, backend=GenlabBackend(str(assets.base), adapters, model_id="tiny"))) as url:
        reply = openai.OpenAI(base_url=url + "/v1", api_key="none").completions.create(model="alpha", prompt="Hi", max_tokens=3)
        with LineageStore() as store:
            (running,) = store.list_runs(kind="serve")
        assert running.status == "running" and running.config["models"] == ["tiny", "alpha"]
    with LineageStore() as store:
        run = store.get_run(running.id)
        inputs = {a.kind: a for a in store.artifacts_of(run.id, "input")}
        totals = store.metrics(run.id)
    assert run.status == "completed" and set(inputs) == {"model", "adapter"}
    assert Path(inputs["model"].path) == assets.base.resolve() and Path(inputs["adapter"].path) == assets.adapters["alpha"].resolve()
    assert totals["completion_tokens"] == reply.usage.completion_tokens and totals["requests"] == 1
