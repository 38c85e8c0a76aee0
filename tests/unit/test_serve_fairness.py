"""One request cannot stall the server (issue 18, part 2): decoding is shared fairly between requests,
places are counted by rows, prompts × n is capped, and a client that leaves frees its rows.

A real uvicorn server with a tiny model (end-of-sequence off, so every row runs to its max tokens) and
a batch of 2, so a huge request fills the batch at once. The huge request is sent on a raw socket,
which the test closes to end it (the server cancels a request whose client left).
"""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import httpx
import openai
import pytest
from test_serve_support import PROMPTS, make_tiny_assets, running_server, wait_for

from genlab.serving.app import create_app
from genlab.serving.config import ServeConfig
from genlab.serving.fair_queue import FairQueue
from genlab.serving.genlab_backend import GenlabBackend

HUGE_PROMPTS, HUGE_TOKENS = 60, 400  # 24,000 tokens at batch 2: minutes of decoding, never waited for


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    assets = make_tiny_assets(tmp_path_factory.getbasetemp() / "serve-assets")
    config = ServeConfig(
        model="tiny", embedder="hashing-8", max_concurrent=80, max_request_rows=64, max_tokens_limit=450,
        jobs_db=tmp_path_factory.mktemp("fair-jobs") / "jobs.sqlite", job_workers=1,
    )  # fmt: skip
    backend = GenlabBackend(str(assets.base), max_batch=2, model_id="tiny")
    backend.scheduler.engine.eos_ids = set()  # every row runs to its own max tokens
    app = create_app(config, backend=backend)
    with running_server(app) as url:
        yield url, backend, app.state.serving


def idle(backend: GenlabBackend, state) -> bool:
    return backend.scheduler.idle and state.limiter.active == 0


def open_request(url: str, path: str, body: dict) -> socket.socket:
    """Send a POST and leave the connection open without reading (closing it is the client leaving)."""
    parts = urlsplit(url)
    payload = json.dumps(body).encode()
    sock = socket.create_connection((parts.hostname, parts.port))
    head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    sock.sendall(head.encode() + payload)
    return sock


def huge_body() -> dict:
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(HUGE_PROMPTS)]
    return {"model": "tiny", "prompt": prompts, "max_tokens": HUGE_TOKENS, "temperature": 0}


def test_fair_queue_gives_a_free_slot_to_the_request_with_the_fewest_rows_decoding() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.push("huge", [f"h{i}" for i in range(100)])
    for _ in range(2):  # the batch fills with the huge request's rows
        group, _row = queue.pop()  # type: ignore[misc]
        queue.started(group)
    queue.push("short", ["s0"])
    assert queue.pop() == ("short", "s0")  # ahead of the huge request's 98 waiting rows
    queue.push("a", ["a0", "a1"])
    queue.push("b", ["b0", "b1"])
    assert [queue.pop()[1] for _ in range(4)] == ["a0", "b0", "a1", "b1"]  # type: ignore[index]  # equals: round-robin
    queue.ended("huge")
    queue.ended("huge")
    assert queue.pop() == ("huge", "h2") and len(queue) == 97


def test_a_three_token_request_answers_within_seconds_while_a_huge_one_runs(served) -> None:
    url, backend, state = served
    scheduler = backend.scheduler
    huge = open_request(url, "/v1/completions", huge_body())
    try:
        wait_for(lambda: scheduler.running == 2 and scheduler.waiting >= HUGE_PROMPTS - 2, "the huge request to fill the batch")
        client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=30)
        reply = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=3, temperature=0
        )
        assert reply.usage.completion_tokens == 3
        # The huge request was still there, most of its rows not even started: the short one did not wait for them.
        assert scheduler.waiting > HUGE_PROMPTS // 2
    finally:
        huge.close()
    wait_for(lambda: idle(backend, state), "the huge request's rows to leave once its client did")


def test_a_request_takes_one_place_per_row(served) -> None:
    url, backend, state = served
    body = {**huge_body(), "prompt": huge_body()["prompt"][:40]}
    first = open_request(url, "/v1/completions", body)
    try:
        wait_for(lambda: state.limiter.active == 40, "the first request to hold its 40 places")
        too_many = {**body, "prompt": huge_body()["prompt"][:41]}  # 40 + 41 rows > 80 places
        refused = httpx.post(url + "/v1/completions", json=too_many, timeout=30)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_requests"
        assert "needs 41" in refused.json()["error"]["message"]
    finally:
        first.close()
    wait_for(lambda: idle(backend, state), "the places to come back")


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/v1/completions", {"model": "tiny", "prompt": ["Hi"] * 65, "max_tokens": 2}, ["65 prompt(s)", "64", "--max-request-rows"]),
        ("/v1/completions", {"model": "tiny", "prompt": ["Hi"] * 9, "n": 8, "max_tokens": 2, "temperature": 1},
         ["n=8", "72 rows", "--max-request-rows"]),
    ],
)  # fmt: skip
def test_prompts_times_n_above_the_cap_is_a_400_naming_the_limit(served, path, body, words) -> None:
    url, backend, state = served
    response = httpx.post(url + path, json=body, timeout=30)
    error = response.json()["error"]
    assert response.status_code == 400 and error["code"] == "too_many_rows" and error["param"] == "prompt"
    assert all(word in error["message"] for word in words), error["message"]
    assert idle(backend, state)  # nothing was queued


def test_a_job_above_the_cap_is_refused_at_submit_and_never_stored(served) -> None:
    url, _backend, state = served
    before = state.jobs.counts()
    request = {"model": "tiny", "prompt": ["x"] * 20_000, "n": 8, "temperature": 1}  # the 100 KB body
    response = httpx.post(url + "/v1/jobs", json={"kind": "completions", "request": request}, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["code"] == "too_many_rows"
    assert "160000 rows" in response.json()["error"]["message"]
    assert state.jobs.counts() == before


def test_a_client_that_leaves_a_non_streaming_request_frees_its_places_and_rows(served) -> None:
    url, backend, state = served
    steps_before, rows_before = backend.decode_stats()
    body = {**huge_body(), "prompt": huge_body()["prompt"][:8]}  # 8 rows × 400 tokens
    with pytest.raises(httpx.ReadTimeout):  # curl -m 1
        httpx.post(url + "/v1/completions", json=body, timeout=httpx.Timeout(30, read=1))
    wait_for(lambda: idle(backend, state), "the request's places and rows to be freed")
    _steps, rows = backend.decode_stats()
    assert rows - rows_before < 8 * HUGE_TOKENS  # cut short: not every token was generated
    answered = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": "Hi", "max_tokens": 2}, timeout=30)
    assert answered.status_code == 200


def test_streams_still_share_the_batch_with_the_huge_request(served) -> None:
    url, backend, state = served
    huge = open_request(url, "/v1/completions", huge_body())
    try:
        wait_for(lambda: backend.scheduler.waiting >= HUGE_PROMPTS - 2, "the huge request to queue its rows")
        client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=30)
        chunks = client.completions.create(model="tiny", prompt="Hello", max_tokens=4, temperature=0, stream=True)
        text = "".join(chunk.choices[0].text for chunk in chunks if chunk.choices)
        assert text and backend.scheduler.waiting > HUGE_PROMPTS // 2
    finally:
        huge.close()
    wait_for(lambda: idle(backend, state), "the huge request's rows to leave")
