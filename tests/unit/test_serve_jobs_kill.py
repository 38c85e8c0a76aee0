"""Async jobs survive a crash: `genlab serve` is SIGKILLed with jobs queued and running, restarted, and
every job completes once — with the answer the same request gets from the real-time route."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from test_serve_support import PROMPTS, bound_socket, make_tiny_assets, wait_for


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory):
    return make_tiny_assets(tmp_path_factory.getbasetemp() / "serve-assets")


# Queued jobs behind the running one at the kill: one worker takes them in turn.
JOBS = 16


def start_server(model: str, port: int, jobs_db, log) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "genlab", "serve", "--model", model, "--port", str(port), "--jobs-db", str(jobs_db),
        "--job-workers", "1", "--embedder", "hashing-8", "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"genlab serve exited with {process.returncode}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, "genlab serve to listen", limit=120, every=0.1)
    return process


def jobs(url: str, ids: list[str]) -> list[dict]:
    return [httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json() for job_id in ids]


def test_jobs_queued_and_running_at_a_kill_complete_after_a_restart(assets, tmp_path) -> None:
    model, jobs_db = str(assets.base), tmp_path / "jobs.sqlite"
    with bound_socket() as sock:
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - both server runs append to it
    server = start_server(model, port, jobs_db, log)
    try:
        # Greedy jobs and sampling jobs without a seed (the store fixes one at submit time).
        requests = [
            {"model": model, "prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": 60, "temperature": 0.0 if i % 2 else 0.9}
            for i in range(JOBS)
        ]
        ids = [
            httpx.post(f"{url}/v1/jobs", json={"kind": "completions", "request": r}, timeout=10).json()["id"] for r in requests
        ]
        # Watched in the store itself, so the kill lands as soon as the worker has claimed a job.
        wait_for(lambda: any(j["status"] != "queued" for j in _stored(jobs_db)), "the worker to claim a job", every=0.005)
        at_kill = _freeze_with_a_job_running(server, jobs_db)
        server.send_signal(signal.SIGKILL)
        server.wait(30)
        assert [j["status"] for j in _stored(jobs_db)] == at_kill  # the stopped server wrote nothing more
        assert "queued" in at_kill and "running" in at_kill, at_kill

        server = start_server(model, port, jobs_db, log)
        finished = wait_for(
            lambda: (found := jobs(url, ids)) and all(j["status"] in ("completed", "failed") for j in found) and found,
            "every job to finish after the restart", limit=240,
        )  # fmt: skip
        assert [j["status"] for j in finished] == ["completed"] * len(ids), [j["error"] for j in finished]
        assert any(j["attempts"] >= 2 for j in finished)  # a job interrupted by the kill ran again

        # Each job's answer is what its stored request (with the seed fixed at submit) gets in real time.
        stored = {row["id"]: row for row in _stored(jobs_db)}
        bodies = [stored[job_id]["body"] for job_id in ids]
        assert all("seed" in body for body, r in zip(bodies, requests, strict=True) if r["temperature"] > 0)
        with ThreadPoolExecutor(8) as pool:
            live = list(pool.map(lambda body: httpx.post(f"{url}/v1/completions", json=body, timeout=120).json(), bodies))
        assert [j["result"]["choices"][0]["text"] for j in finished] == [r["choices"][0]["text"] for r in live]
    finally:
        server.kill()
        server.wait(30)
        log.close()


def _freeze_with_a_job_running(server: subprocess.Popen, jobs_db) -> list[str]:
    """SIGSTOP the server at a moment its worker holds a job (not between two), so the kill interrupts one.

    However slow the test's polling is next to the worker, the server is frozen before the store is read:
    if it was caught between finishing a job and claiming the next, it runs on for a moment and is caught again.
    """
    for _ in range(200):
        server.send_signal(signal.SIGSTOP)
        statuses = [j["status"] for j in _stored(jobs_db)]
        if "running" in statuses or "queued" not in statuses:
            return statuses
        server.send_signal(signal.SIGCONT)
        time.sleep(0.001)
    raise AssertionError("the worker was never caught holding a job")


def _stored(jobs_db) -> list[dict]:
    with sqlite3.connect(jobs_db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT id, status, body, attempts FROM jobs ORDER BY seq").fetchall()
    return [{"id": r["id"], "status": r["status"], "body": json.loads(r["body"]), "attempts": r["attempts"]} for r in rows]
