"""The SQLite job store and its worker: claiming, finishing once, seeds, recovery after a crash."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from genlab.errors import InvalidValueError
from genlab.serving.job_worker import JobWorker
from genlab.serving.jobs import JobNotFoundError, JobStore, fix_seed


def seeded_value(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """A stand-in for a sampling model: the answer depends on the body's seed only."""
    return {"kind": kind, "value": random.Random(body["seed"]).random()}


def wait_until(condition: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_submit_get_claim_complete_round_trip(tmp_path: Path) -> None:
    with JobStore(tmp_path / "jobs.sqlite") as store:
        job_id = store.submit("completions", {"prompt": "hi", "temperature": 0})
        job = store.get(job_id)
        assert job is not None and job.status == "queued" and job.body == {"prompt": "hi", "temperature": 0}
        assert job.attempts == 0 and job.started_at is None and job.result is None
        claimed = store.claim_next()
        assert claimed is not None and claimed.id == job_id and claimed.status == "running" and claimed.attempts == 1
        assert store.claim_next() is None  # nothing else queued
        assert store.complete(job_id, {"text": "hello"})
        done = store.get(job_id)
        assert done is not None and done.status == "completed" and done.result == {"text": "hello"}
        assert done.created_at <= done.started_at <= done.finished_at
        assert store.get("job-nope") is None


def test_claims_oldest_first(tmp_path: Path) -> None:
    with JobStore(tmp_path / "jobs.sqlite") as store:
        ids = [store.submit("completions", {"prompt": str(i), "temperature": 0}) for i in range(5)]
        claimed = [store.claim_next().id for _ in range(5)]  # type: ignore[union-attr]
        assert claimed == ids


def test_a_job_completes_once(tmp_path: Path) -> None:
    with JobStore(tmp_path / "jobs.sqlite") as store:
        job_id = store.submit("completions", {"temperature": 0})
        store.claim_next()
        assert store.complete(job_id, {"text": "first"})
        assert not store.complete(job_id, {"text": "second"})
        assert not store.fail(job_id, "too late")
        job = store.get(job_id)
        assert job is not None and job.status == "completed" and job.result == {"text": "first"} and job.error is None
        with pytest.raises(JobNotFoundError):
            store.complete("job-missing", {})


def test_seed_is_fixed_for_sampling_bodies_only(tmp_path: Path) -> None:
    with JobStore(tmp_path / "jobs.sqlite") as store:
        sampled = store.get(store.submit("chat.completions", {"messages": [], "temperature": 0.7}))
        default = store.get(store.submit("chat.completions", {"messages": []}))  # OpenAI's default samples
        greedy = store.get(store.submit("chat.completions", {"messages": [], "temperature": 0}))
        chosen = store.get(store.submit("chat.completions", {"temperature": 0.7, "seed": 5}))
    assert sampled is not None and isinstance(sampled.body["seed"], int)
    assert default is not None and isinstance(default.body["seed"], int)
    assert greedy is not None and "seed" not in greedy.body
    assert chosen is not None and chosen.body["seed"] == 5
    with JobStore(tmp_path / "greedy-default.sqlite", default_temperature=0.0) as store:
        plain = store.get(store.submit("completions", {"prompt": "x"}))
    assert plain is not None and "seed" not in plain.body
    original = {"temperature": 1.0}
    assert "seed" in fix_seed(original) and original == {"temperature": 1.0}  # the caller's dict is not changed


def test_bad_submissions_are_refused(tmp_path: Path) -> None:
    with JobStore(tmp_path / "jobs.sqlite") as store:
        with pytest.raises(InvalidValueError, match="kind"):
            store.submit("", {})
        with pytest.raises(InvalidValueError, match="JSON object"):
            store.submit("completions", ["not", "a", "dict"])  # type: ignore[arg-type]
        with pytest.raises(InvalidValueError, match="JSON"):
            store.submit("completions", {"temperature": 0, "x": object()})
        assert store.counts() == {"queued": 0, "running": 0, "completed": 0, "failed": 0}


def test_two_workers_never_run_the_same_job(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    runs: list[str] = []
    runs_lock = threading.Lock()
    both_busy = threading.Barrier(2, timeout=30)  # each worker's first job waits for the other's
    first_call = threading.local()

    def handler(kind: str, body: dict[str, Any]) -> dict[str, Any]:
        with runs_lock:
            runs.append(body["n"])
        if not getattr(first_call, "done", False):
            first_call.done = True
            both_busy.wait()  # two jobs running at once, one per worker
        return {"n": body["n"]}

    # Two stores on one file (two connections), as two processes would have.
    with JobStore(path) as submitter, JobStore(path) as store_a, JobStore(path) as store_b:
        ids = [submitter.submit("completions", {"n": i, "temperature": 0}) for i in range(60)]
        workers = [JobWorker(store_a, handler, poll_seconds=0.01), JobWorker(store_b, handler, poll_seconds=0.01)]
        for worker in workers:
            worker.start()
        wait_until(lambda: submitter.counts()["completed"] == 60)
        for worker in workers:
            assert worker.stop(timeout=10)
        assert sorted(runs) == list(range(60))  # each job ran exactly once
        assert all(worker.processed > 0 for worker in workers)  # both took part
        assert [submitter.get(i).result for i in ids] == [{"n": n} for n in range(60)]  # type: ignore[union-attr]


def test_worker_wakes_on_submit_and_records_failures(tmp_path: Path) -> None:
    def handler(kind: str, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("explode"):
            raise RuntimeError("model fell over\nwith a long traceback")
        if body.get("wrong_type"):
            return ["not", "a", "dict"]  # type: ignore[return-value]
        return {"ok": True}

    with JobStore(tmp_path / "jobs.sqlite") as store:
        worker = JobWorker(store, handler, poll_seconds=60).start()  # a minute's poll: only the wake-up can be quick
        try:
            good = store.submit("completions", {"temperature": 0})
            bad = store.submit("completions", {"temperature": 0, "explode": True})
            odd = store.submit("completions", {"temperature": 0, "wrong_type": True})
            wait_until(lambda: store.counts()["queued"] + store.counts()["running"] == 0, seconds=20)
        finally:
            assert worker.stop(timeout=10)
        assert store.get(good).result == {"ok": True}  # type: ignore[union-attr]
        failed = store.get(bad)
        assert failed is not None and failed.status == "failed" and failed.result is None
        assert failed.error == "RuntimeError: model fell over"  # one line
        assert "not a dict" in store.get(odd).error  # type: ignore[union-attr, operator]
        assert store.counts() == {"queued": 0, "running": 0, "completed": 1, "failed": 2}


def test_recover_after_a_dropped_store_gives_one_result(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    crashed = JobStore(path)
    job_id = crashed.submit("completions", {"prompt": "x", "temperature": 0.9})
    other = crashed.submit("completions", {"prompt": "y", "temperature": 0.9})
    claimed = crashed.claim_next()
    assert claimed is not None and claimed.id == job_id
    first_try = seeded_value(claimed.kind, claimed.body)  # computed, then the "process" dies before completing
    crashed.close()

    with JobStore(path) as store:
        assert store.get(job_id).status == "running"  # type: ignore[union-attr]
        assert store.recover() == 1
        assert store.recover() == 0  # nothing left to recover
        worker = JobWorker(store, seeded_value)
        while worker.run_once() is not None:
            pass
        job = store.get(job_id)
        assert job is not None and job.status == "completed" and job.attempts == 2
        assert job.result == first_try  # the seed fixed at submit time: the rerun gives the same answer
        assert store.get(other).attempts == 1  # type: ignore[union-attr]
        assert store.counts() == {"queued": 0, "running": 0, "completed": 2, "failed": 0}


def test_recover_leaves_jobs_of_a_live_store_alone(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    with JobStore(path) as running, JobStore(path) as restarted:
        job_id = running.submit("completions", {"temperature": 0})
        running.claim_next()
        assert restarted.recover() == 0
        assert restarted.get(job_id).status == "running"  # type: ignore[union-attr]


def test_a_job_interrupted_too_often_is_failed_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    job_id = None
    for _ in range(2):
        store = JobStore(path, max_attempts=2)
        job_id = job_id or store.submit("completions", {"temperature": 0})
        store.recover()
        assert store.claim_next().id == job_id  # type: ignore[union-attr]
        store.close()  # crash while running it
    with JobStore(path, max_attempts=2) as store:
        assert store.recover() == 1
        job = store.get(job_id)
        assert job is not None and job.status == "failed" and job.error.startswith("interrupted 2 times: ")
        assert store.claim_next() is None


CHILD = """
import json, pathlib, random, sys, time
from genlab.serving.job_worker import JobWorker
from genlab.serving.jobs import JobStore

path, log = sys.argv[1], pathlib.Path(sys.argv[2])

def handler(kind, body):
    value = random.Random(body["seed"]).random()
    with log.open("a") as out:
        out.write(json.dumps({"n": body["n"], "value": value}) + "\\n")
    if body.get("block"):
        time.sleep(600)  # killed here, mid-job
    return {"kind": kind, "value": value}

store = JobStore(path)
store.recover()
JobWorker(store, handler, poll_seconds=0.02).start()
time.sleep(600)
"""


def test_a_process_killed_mid_job_is_finished_by_the_next(tmp_path: Path) -> None:
    path, log = tmp_path / "jobs.sqlite", tmp_path / "started.jsonl"
    with JobStore(path) as store:
        ids = [store.submit("completions", {"n": n, "temperature": 0.8}) for n in range(2)]
        ids.append(store.submit("completions", {"n": 2, "temperature": 0.8, "block": True}))
        ids += [store.submit("completions", {"n": n, "temperature": 0.8}) for n in range(3, 5)]
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(log)])
        try:
            wait_until(lambda: log.is_file() and '"n": 2' in log.read_text(), seconds=60)
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        assert child.returncode == -signal.SIGKILL
        started = [json.loads(line) for line in log.read_text().splitlines()]
        assert store.counts() == {"queued": 2, "running": 1, "completed": 2, "failed": 0}

        assert store.recover() == 1  # the blocked job, whose process is gone
        worker = JobWorker(store, lambda kind, body: {**seeded_value(kind, body), "rerun": True})
        while worker.run_once() is not None:
            pass
        jobs = [store.get(job_id) for job_id in ids]
        assert [job.status for job in jobs] == ["completed"] * 5  # type: ignore[union-attr]
        assert [job.attempts for job in jobs] == [1, 1, 2, 1, 1]  # type: ignore[union-attr]
        reran = [("rerun" in job.result) for job in jobs]  # type: ignore[union-attr, operator]
        assert reran == [False, False, True, True, True]
        interrupted = next(row for row in started if row["n"] == 2)
        assert jobs[2].result["value"] == interrupted["value"]  # type: ignore[union-attr, index]
