"""Server items of issue 18, part 3, and poison jobs of part 2: lone surrogates are a 400 naming the
field, /health tells a caller without the key only that the server is up, the docs follow
--public-docs, a job the server died under too often is failed with the reason, and SIGTERM while a
job runs shuts down cleanly and leaves the job for the next start."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys

import httpx
import openai
import pytest
from test_serve_support import PROMPTS, bound_socket, make_tiny_assets, running_server, wait_for

from genlab.serving.app import create_app
from genlab.serving.config import ServeConfig
from genlab.serving.genlab_backend import GenlabBackend
from genlab.serving.jobs import JobStore

KEY = "hardening-key"


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory):
    return make_tiny_assets(tmp_path_factory.getbasetemp() / "serve-assets")


@pytest.fixture(scope="module")
def server(assets, tmp_path_factory: pytest.TempPathFactory):
    config = ServeConfig(
        model="tiny", api_key=KEY, embedder="hashing-8", max_tokens_limit=16,
        jobs_db=tmp_path_factory.mktemp("hardening-jobs") / "jobs.sqlite", job_workers=0,
    )  # fmt: skip
    with running_server(create_app(config, backend=GenlabBackend(str(assets.base), model_id="tiny"))) as url:
        yield url


# Raw JSON: "\ud800" is a lone surrogate escape, valid JSON that decodes to a string no encoder accepts.
SURROGATE = r"a\ud800b"
CASES = [
    ("/v1/chat/completions", '{"model": "tiny", "messages": [{"role": "user", "content": "%s"}]}', "messages.0.content"),
    ("/v1/chat/completions", '{"model": "tiny", "messages": [{"role": "user", "content": [{"type": "text", "text": "%s"}]}]}',
     "messages.0.content.0.text"),
    ("/v1/chat/completions", '{"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "stop": "%s"}', "stop"),
    ("/v1/chat/completions", '{"model": "%s", "messages": [{"role": "user", "content": "Hi"}]}', "model"),
    ("/v1/completions", '{"model": "tiny", "prompt": "%s"}', "prompt"),
    ("/v1/completions", '{"model": "tiny", "prompt": ["fine", "%s"]}', "prompt.1"),
    ("/v1/embeddings", '{"model": "hashing-8", "input": "%s"}', "input"),
    ("/v1/embeddings", '{"model": "hashing-8", "input": ["fine", "%s"]}', "input.1"),
    ("/v1/jobs", '{"kind": "chat.completions", "request": {"model": "tiny", "messages": [{"role": "user", "content": "%s"}]}}',
     "request.messages.0.content"),
    ("/v1/jobs", '{"kind": "completions", "request": {"model": "tiny", "prompt": "%s"}}', "request.prompt"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "template", "field"), CASES, ids=[f"{c[0]}:{c[2]}" for c in CASES])
def test_a_lone_surrogate_in_any_text_field_is_a_400_naming_the_field(server, path, template, field) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    response = httpx.post(server + path, content=(template % SURROGATE).encode(), headers=headers, timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == field and error["message"].startswith(f"{field} is not allowed: it contains a lone surrogate")
    assert error["message"].count(". ") == 0 and error["message"].endswith(".")  # one sentence


def test_a_surrogate_pair_is_text_and_is_answered(server) -> None:
    client = openai.OpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0, timeout=30)
    reply = client.completions.create(model="tiny", prompt="smile \U0001f600", max_tokens=2, temperature=0)
    assert reply.usage.completion_tokens >= 1


def test_health_without_the_key_says_only_up_and_the_docs_need_the_key(server) -> None:
    assert httpx.get(server + "/health").json() == {"status": "ok"}
    assert httpx.get(server + "/health", headers={"Authorization": "Bearer wrong"}).json() == {"status": "ok"}
    details = httpx.get(server + "/health", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert details["models"] == ["tiny"] and details["model_loaded"] is True
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert httpx.get(server + path).status_code == 401, path
        assert httpx.get(server + path, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200, path


def test_public_docs_open_the_docs_but_not_the_health_details(assets, tmp_path) -> None:
    config = ServeConfig(model="tiny", api_key=KEY, embedder="hashing-8", jobs_db=tmp_path / "j.sqlite", job_workers=0, public_docs=True)
    with running_server(create_app(config, backend=GenlabBackend(str(assets.base), model_id="tiny"))) as url:
        assert "/v1/chat/completions" in httpx.get(url + "/openapi.json").json()["paths"]
        assert httpx.get(url + "/docs").status_code == 200
        assert httpx.get(url + "/health").json() == {"status": "ok"}
        assert httpx.get(url + "/v1/models").status_code == 401


def test_without_a_key_health_and_docs_stay_open(assets, tmp_path) -> None:
    config = ServeConfig(model="tiny", embedder="hashing-8", jobs_db=tmp_path / "j.sqlite", job_workers=0)
    with running_server(create_app(config, backend=GenlabBackend(str(assets.base), model_id="tiny"))) as url:
        assert httpx.get(url + "/health").json()["models"] == ["tiny"]
        assert httpx.get(url + "/openapi.json").status_code == 200


# --- poison jobs ---------------------------------------------------------------------------------------


def _interrupt(path, job_id: str) -> None:
    """Claim the job in a store that then closes while it runs: what a server killed mid-job leaves."""
    store = JobStore(path, max_attempts=100)
    store.recover()
    claimed = store.claim_next()
    assert claimed is not None and claimed.id == job_id
    store.close()


def test_a_job_the_server_stopped_under_twice_is_failed_with_the_reason(assets, tmp_path) -> None:
    path = tmp_path / "jobs.sqlite"
    with JobStore(path) as store:
        job_id = store.submit("completions", {"model": "tiny", "prompt": "Hi", "max_tokens": 2, "temperature": 0})
    _interrupt(path, job_id)
    _interrupt(path, job_id)
    config = ServeConfig(model="tiny", embedder="hashing-8", jobs_db=path, job_workers=1)  # default: 2 attempts
    with running_server(create_app(config, backend=GenlabBackend(str(assets.base), model_id="tiny"))) as url:
        job = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
    assert job["status"] == "failed" and job["attempts"] == 2
    assert job["error"].startswith("interrupted 2 times: the server stopped or was killed while this job ran")


def test_a_job_stored_before_the_row_cap_fails_with_the_reason_instead_of_running(assets, tmp_path) -> None:
    path = tmp_path / "jobs.sqlite"
    with JobStore(path) as store:  # as an older server accepted it: the store itself does not check requests
        job_id = store.submit("completions", {"model": "tiny", "prompt": ["Hi"] * 2000, "n": 8, "temperature": 1})
    config = ServeConfig(model="tiny", embedder="hashing-8", jobs_db=path, job_workers=1)
    with running_server(create_app(config, backend=GenlabBackend(str(assets.base), model_id="tiny"))) as url:
        job = wait_for(
            lambda: (found := httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json())["status"] == "failed" and found,
            "the over-cap job to fail",
        )
    assert "2000 prompt(s) × n=8 = 16000 rows" in job["error"] and "--max-request-rows" in job["error"]


# --- SIGTERM while a job runs -------------------------------------------------------------------------


def _status(path, job_id: str) -> tuple[str, int]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT status, attempts FROM jobs WHERE id = ?", (job_id,)).fetchone()


def _serve(model: str, port: int, jobs_db, log) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "genlab", "serve", "--model", model, "--port", str(port), "--jobs-db", str(jobs_db),
        "--job-workers", "1", "--max-batch", "1", "--embedder", "hashing-8", "--log-level", "info",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})

    def up() -> bool:
        assert process.poll() is None, f"genlab serve exited with {process.returncode}"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, "genlab serve to listen", limit=120, every=0.1)
    return process


def test_sigterm_while_a_job_runs_stops_cleanly_and_the_job_runs_again_after_a_restart(assets, tmp_path) -> None:
    jobs_db, log_path = tmp_path / "jobs.sqlite", tmp_path / "server.log"
    with bound_socket() as sock:
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    # 64 rows × 400 tokens one row at a time: minutes of work, so the job is surely running at the signal.
    request = {"model": str(assets.base), "prompt": [PROMPTS[i % len(PROMPTS)] for i in range(64)], "max_tokens": 400,
               "temperature": 0}  # fmt: skip
    with open(log_path, "w") as log:
        server = _serve(str(assets.base), port, jobs_db, log)
        try:
            job_id = httpx.post(f"{url}/v1/jobs", json={"kind": "completions", "request": request}, timeout=30).json()["id"]
            wait_for(lambda: _status(jobs_db, job_id)[0] == "running", "the job to start")
            server.send_signal(signal.SIGTERM)
            assert server.wait(120) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
            assert _status(jobs_db, job_id) == ("running", 1)  # cut short, not failed: left for the next start
            text = log_path.read_text()
            assert "Application shutdown complete" in text and "Finished server process" in text, text
            assert "Traceback" not in text and "closed" not in text.lower(), text

            server = _serve(str(assets.base), port, jobs_db, log)
            wait_for(lambda: _status(jobs_db, job_id) == ("running", 2), "the job to run again after the restart")
        finally:
            server.kill()
            server.wait(30)
