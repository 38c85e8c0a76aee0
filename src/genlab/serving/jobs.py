"""Asynchronous inference jobs: a durable queue in SQLite and a worker thread that runs them.

``JobStore`` keeps every job (its request body, status, result or error) in one SQLite file (WAL, a
busy timeout), so a job accepted before a crash is still there after a restart. A job moves

    queued -> running -> completed | failed

and each move is one transaction. ``claim_next`` takes the oldest queued job inside ``BEGIN
IMMEDIATE`` (the write lock), so two workers — threads or processes — never claim the same job.
``complete`` and ``fail`` only act on a job that has not finished: a second ``complete`` never
overwrites the first result.

Crash recovery: a claimed job records the process (pid and the pid's start time, so a reused pid is
not mistaken for the owner) and the store instance that claimed it. ``recover()`` at start-up puts
back in the queue the running jobs whose owner is gone — a killed process, or a store closed in this
process — and marks failed, with the reason, a job interrupted ``max_attempts`` times (a request that
crashes the server every time, or outlasts every restart, must not come back forever). Jobs owned by
a live process are left alone, so a second server on the same file does not steal them.

The worker thread that runs jobs is :class:`genlab.serving.job_worker.JobWorker`. A closed store
refuses every call with :class:`JobStoreClosedError` rather than touching a closed SQLite connection
(a worker still finishing a job at shutdown).

A rerun must give the same answer as the interrupted run: a body that samples (``temperature`` above
0, or absent where the server's default samples, as OpenAI's 1.0 does) and has no ``seed`` gets one
fixed at submit time, stored in the body the worker reads.

The queue is written here rather than taken from a task-queue library (Celery, RQ, Huey) because those
need a broker process or give no "same job, same seed after a crash" rule; SQLite is the store genlab
already uses for lineage.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from genlab.errors import GenlabError, InvalidValueError
from genlab.sqlite_support import connect_store, process_start_time

JobStatus = Literal["queued", "running", "completed", "failed"]
STATUSES: tuple[JobStatus, ...] = ("queued", "running", "completed", "failed")

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- submission order: oldest first
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,                     -- JSON, with any seed fixed at submit time
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    result TEXT,                            -- JSON
    error TEXT,
    created_at REAL NOT NULL,               -- Unix seconds
    started_at REAL,
    finished_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,    -- claims so far
    owner_pid INTEGER,                      -- who runs it now
    owner_pid_started REAL,
    owner_store TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);
"""

# Store instances open in this process: a running job whose store is not here was orphaned by a close.
_OPEN_STORES: set[str] = set()
_OPEN_STORES_LOCK = threading.Lock()


class JobNotFoundError(GenlabError):
    """No job with this id."""


class JobStoreClosedError(GenlabError):
    """The store was closed (the server is stopping)."""


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    body: dict[str, Any]
    status: JobStatus
    result: dict[str, Any] | None
    error: str | None
    created_at: float  # Unix seconds
    started_at: float | None  # of the latest attempt
    finished_at: float | None
    attempts: int  # times claimed (1 for a job that ran once)


def default_jobs_db() -> Path:
    """``$GENLAB_HOME/jobs.sqlite``."""
    from genlab.home import genlab_home

    return genlab_home() / "jobs.sqlite"


def fix_seed(body: dict[str, Any], *, default_temperature: float = 1.0) -> dict[str, Any]:
    """``body`` with a ``seed`` added if it samples and has none (a copy; greedy bodies come back equal)."""
    temperature = body.get("temperature")
    temperature = default_temperature if temperature is None else temperature
    samples = not isinstance(temperature, (int, float)) or temperature > 0  # a bad value is left for the handler
    if not samples or body.get("seed") is not None:
        return dict(body)
    return {**body, "seed": secrets.randbits(31)}  # 31 bits: a valid seed for every backend (llama.cpp's is u32)


def interrupted_reason(attempts: int) -> str:
    """Why a job interrupted ``attempts`` times is failed instead of queued again."""
    return (
        f"interrupted {attempts} times: the server stopped or was killed while this job ran each time, "
        "so it is not run again (split it into smaller jobs)"
    )


def one_line(error: BaseException) -> str:
    """A failure reason on one line: the error's type (unless it is a user error) and first line, capped."""
    text = (str(error).strip().splitlines() or [""])[0]
    reason = text if isinstance(error, GenlabError) and text else f"{type(error).__name__}: {text}".rstrip(": ")
    return reason[:500]


class JobStore:
    """Jobs in the SQLite file at ``path`` (created if needed); see the module docstring.

    ``max_attempts``: claims after which an interrupted job is failed instead of queued again.
    ``default_temperature``: the temperature a body without one samples at (OpenAI's default, 1.0).
    """

    def __init__(self, path: str | Path, *, max_attempts: int = 3, default_temperature: float = 1.0) -> None:
        if max_attempts < 1:
            raise InvalidValueError(f"max_attempts={max_attempts!r} is not allowed: a job needs at least 1 attempt.")
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_attempts = max_attempts
        self.default_temperature = default_temperature
        self.instance = uuid.uuid4().hex
        self._pid = os.getpid()
        self._pid_started = process_start_time(self._pid)
        self._lock = threading.RLock()  # one connection, shared by the server's threads
        self._wakeups: list[threading.Event] = []  # workers in this process, woken by submit
        self._conn = connect_store(self.path, schema=_SCHEMA, what="job store")
        with _OPEN_STORES_LOCK:
            _OPEN_STORES.add(self.instance)
        self._closed = False

    def close(self) -> None:
        """Close the file; jobs this store was running count as interrupted for ``recover``."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with _OPEN_STORES_LOCK:
                _OPEN_STORES.discard(self.instance)
            self._conn.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _open(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; :class:`JobStoreClosedError` once the store is closed."""
        with self._lock:
            if self._closed:
                raise JobStoreClosedError(f"the job store {self.path} is closed (the server is stopping).")
            yield self._conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._open():
            self._conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no two claimers read the same row
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # --- the queue --------------------------------------------------------------------------------

    def submit(self, kind: str, body: dict[str, Any]) -> str:
        """Queue a job; returns its id. A sampling body without a seed is stored with one."""
        if not isinstance(kind, str) or not kind.strip():
            raise InvalidValueError(f"kind={kind!r} is not allowed: a job needs a non-empty kind.")
        if not isinstance(body, dict):
            raise InvalidValueError(f"body of type {type(body).__name__} is not allowed: a job body is a JSON object.")
        fixed = fix_seed(body, default_temperature=self.default_temperature)
        try:
            text = json.dumps(fixed, sort_keys=True)
        except (TypeError, ValueError) as error:
            raise InvalidValueError(f"the job body is not allowed: it cannot be stored as JSON ({error}).") from None
        job_id = f"job-{uuid.uuid4().hex}"
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO jobs (id, kind, body, status, created_at) VALUES (?, ?, ?, 'queued', ?)",
                (job_id, kind, text, time.time()),
            )
        for event in list(self._wakeups):
            event.set()
        return job_id

    def get(self, job_id: str) -> Job | None:
        with self._open():
            row = self._conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def claim_next(self) -> Job | None:
        """Move the oldest queued job to running and return it; None when the queue is empty."""
        with self._transaction() as conn:
            row = conn.execute("SELECT seq FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE jobs SET status = 'running', started_at = ?, attempts = attempts + 1,"
                " owner_pid = ?, owner_pid_started = ?, owner_store = ? WHERE seq = ?",
                (time.time(), self._pid, self._pid_started, self.instance, row["seq"]),
            )
            claimed = conn.execute("SELECT * FROM jobs WHERE seq = ?", (row["seq"],)).fetchone()
        return _job(claimed)

    def complete(self, job_id: str, result: dict[str, Any]) -> bool:
        """Store the result of an unfinished job; False (result kept as it was) if it had already finished."""
        if not isinstance(result, dict):
            raise InvalidValueError(f"a job result of type {type(result).__name__} is not allowed: it is a JSON object.")
        return self._finish(job_id, "completed", result=json.dumps(result, sort_keys=True))

    def fail(self, job_id: str, error: str) -> bool:
        """Mark an unfinished job failed with a one-line reason; False if it had already finished."""
        reason = (str(error).strip().splitlines() or ["failed"])[0][:500]
        return self._finish(job_id, "failed", error=reason)

    def _finish(self, job_id: str, status: JobStatus, *, result: str | None = None, error: str | None = None) -> bool:
        with self._transaction() as conn:
            changed = conn.execute(
                "UPDATE jobs SET status = ?, result = ?, error = ?, finished_at = ?, owner_pid = NULL,"
                " owner_pid_started = NULL, owner_store = NULL WHERE id = ? AND status IN ('queued', 'running')",
                (status, result, error, time.time(), job_id),
            ).rowcount
            if not changed and conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
                raise JobNotFoundError(f"no job with id {job_id!r}.")
        return bool(changed)

    def recover(self) -> int:
        """Requeue (or fail, past ``max_attempts``) the running jobs whose owner is gone; returns how many."""
        with self._transaction() as conn:
            rows = conn.execute("SELECT * FROM jobs WHERE status = 'running'").fetchall()
            orphans = [row for row in rows if not _owner_alive(row)]
            for row in orphans:
                if row["attempts"] >= self.max_attempts:
                    conn.execute(
                        "UPDATE jobs SET status = 'failed', error = ?, finished_at = ?, owner_pid = NULL,"
                        " owner_pid_started = NULL, owner_store = NULL WHERE seq = ?",
                        (interrupted_reason(row["attempts"]), time.time(), row["seq"]),
                    )
                else:
                    conn.execute(
                        "UPDATE jobs SET status = 'queued', started_at = NULL, owner_pid = NULL,"
                        " owner_pid_started = NULL, owner_store = NULL WHERE seq = ?",
                        (row["seq"],),
                    )
        if orphans:
            log.warning("recovered %d interrupted job(s) in %s", len(orphans), self.path)
            for event in list(self._wakeups):
                event.set()
        return len(orphans)

    def counts(self) -> dict[str, int]:
        """Jobs by status, every status present (for metrics)."""
        with self._open():
            rows = self._conn.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
        found = {row["status"]: row["n"] for row in rows}
        return {status: int(found.get(status, 0)) for status in STATUSES}

    def add_wakeup(self, event: threading.Event) -> None:
        """Set ``event`` whenever a job is submitted (or recovered) through this store."""
        self._wakeups.append(event)

    def remove_wakeup(self, event: threading.Event) -> None:
        with contextlib.suppress(ValueError):
            self._wakeups.remove(event)


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        kind=row["kind"],
        body=json.loads(row["body"]),
        status=row["status"],
        result=json.loads(row["result"]) if row["result"] is not None else None,
        error=row["error"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        attempts=row["attempts"],
    )


def _owner_alive(row: sqlite3.Row) -> bool:
    """Whether the process and store that claimed a running job are still there."""
    pid = row["owner_pid"]
    if pid is None:
        return False
    started = process_start_time(pid)
    recorded = row["owner_pid_started"]
    if started is None or (recorded is not None and abs(started - recorded) >= 1.0):
        return False  # gone, or the pid now belongs to another process
    if pid == os.getpid():  # this process: alive only while the claiming store is open
        with _OPEN_STORES_LOCK:
            return row["owner_store"] in _OPEN_STORES
    return True
