"""The lineage store: every run, what it read, what it wrote and how it scored, in one SQLite file.

SQLite in WAL mode lets a reader (``genlab runs list``) look while a training run writes. Every
write is one transaction. A run records its pid and the pid's start time, so a run whose process
died without saying so (SIGKILL, power loss) is found on the next open and marked failed with the
reason: no run stays "running" forever.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from genlab import __version__
from genlab.errors import GenlabError
from genlab.home import genlab_home
from genlab.lineage.hashing import path_fingerprint, sha256_path
from genlab.lineage.records import ArtifactRecord, MetricPoint, RunLink, RunRecord
from genlab.lineage.schema import DDL, SCHEMA_VERSION
from genlab.sqlite_support import connect_store, process_start_time


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_run_id(kind: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{kind}-{stamp}-{uuid.uuid4().hex[:6]}"


class RunNotFoundError(GenlabError):
    pass


class LineageStore:
    """Open (creating if needed) the store at ``path`` (default ``$GENLAB_HOME/lineage.sqlite``)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else genlab_home() / "lineage.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = connect_store(self.path, schema=DDL, what="lineage store")
        self._conn.execute("PRAGMA foreign_keys=ON")
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        self.mark_dead_runs_failed()

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LineageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # --- runs -------------------------------------------------------------------------------

    def start_run(self, kind: str, config: dict[str, Any] | None = None) -> str:
        run_id = new_run_id(kind)
        pid = os.getpid()
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO runs (id, kind, status, started_at, config, genlab_version, host, pid, pid_started_at)"
                " VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    kind,
                    utc_now(),
                    json.dumps(config or {}, sort_keys=True, default=str),
                    __version__,
                    socket.gethostname(),
                    pid,
                    process_start_time(pid),
                ),
            )
        return run_id

    def finish_run(self, run_id: str, *, error: str | None = None) -> None:
        status = "failed" if error is not None else "completed"
        with self._transaction() as conn:
            conn.execute(
                "UPDATE runs SET status = ?, ended_at = ?, error = ? WHERE id = ? AND status = 'running'",
                (status, utc_now(), error, run_id),
            )

    def mark_dead_runs_failed(self) -> int:
        """Mark failed the runs of this host whose process is gone; return how many."""
        host = socket.gethostname()
        rows = self._conn.execute(
            "SELECT id, pid, pid_started_at FROM runs WHERE status = 'running' AND host = ?", (host,)
        ).fetchall()
        dead = []
        for row in rows:
            started = process_start_time(row["pid"])
            alive = started is not None and (
                row["pid_started_at"] is None or abs(started - row["pid_started_at"]) < 1.0
            )
            if not alive:
                dead.append((row["id"], row["pid"]))
        for run_id, pid in dead:
            self.finish_run(run_id, error=f"process {pid} ended without finishing the run (killed or crashed)")
        return len(dead)

    def get_run(self, run_id: str) -> RunRecord:
        row = self._conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            row = self._conn.execute(
                "SELECT * FROM runs WHERE id LIKE ? ORDER BY started_at DESC LIMIT 2", (f"%{run_id}%",)
            ).fetchall()
            if len(row) != 1:
                raise RunNotFoundError(f"no run with id {run_id!r}; `genlab runs list` shows the runs there are.")
            row = row[0]
        return RunRecord.from_row(row)

    def list_runs(self, *, kind: str | None = None, status: str | None = None, limit: int = 50) -> list[RunRecord]:
        clauses, params = [], []
        if kind:
            clauses.append("kind = ?")
            params.append(kind)
        if status:
            clauses.append("status = ?")
            params.append(status)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._conn.execute(
            f"SELECT * FROM runs {where} ORDER BY started_at DESC, rowid DESC LIMIT ?", (*params, limit)
        ).fetchall()
        return [RunRecord.from_row(row) for row in rows]

    # --- metrics ------------------------------------------------------------------------------

    def log_metric(self, run_id: str, name: str, value: float, step: int | None = None) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO metrics (run_id, name, value, step, recorded_at) VALUES (?, ?, ?, ?, ?)",
                (run_id, name, float(value), step, utc_now()),
            )

    def metrics(self, run_id: str) -> dict[str, float]:
        """The last value of each metric of a run (curves: use :meth:`metric_history`)."""
        rows = self._conn.execute(
            "SELECT name, value FROM metrics WHERE run_id = ? ORDER BY rowid", (run_id,)
        ).fetchall()
        return {row["name"]: row["value"] for row in rows}

    def metric_history(self, run_id: str, name: str) -> list[tuple[int | None, float]]:
        rows = self._conn.execute(
            "SELECT step, value FROM metrics WHERE run_id = ? AND name = ? ORDER BY rowid", (run_id, name)
        ).fetchall()
        return [(row["step"], row["value"]) for row in rows]

    def metric_points(self, run_id: str) -> list[MetricPoint]:
        """Every value of every metric of a run, in the order logged (curves with their times, for export)."""
        rows = self._conn.execute(
            "SELECT name, value, step, recorded_at FROM metrics WHERE run_id = ? ORDER BY rowid", (run_id,)
        ).fetchall()
        return [MetricPoint(row["name"], row["value"], row["step"], row["recorded_at"]) for row in rows]

    # --- artifacts and links ----------------------------------------------------------------------

    def content_hash(self, path: Path) -> str:
        """SHA-256 of a file or folder, cached by (path, sizes, modification times)."""
        key = str(path.resolve())
        fingerprint = path_fingerprint(path)
        row = self._conn.execute("SELECT fingerprint, sha256 FROM hash_cache WHERE path = ?", (key,)).fetchone()
        if row is not None and row["fingerprint"] == fingerprint:
            return row["sha256"]
        digest = sha256_path(path)
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO hash_cache (path, fingerprint, sha256) VALUES (?, ?, ?)",
                (key, fingerprint, digest),
            )
        return digest

    def register_artifact(self, path: str | Path, kind: str, metadata: dict[str, Any] | None = None) -> ArtifactRecord:
        """Record a file or folder by content hash; the same content at the same path is one artifact."""
        path = Path(path)
        if not path.exists():
            raise GenlabError(f"cannot record artifact {path}: no such file or folder.")
        digest = self.content_hash(path)
        size = path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        resolved = str(path.resolve())
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT * FROM artifacts WHERE path = ? AND sha256 = ?", (resolved, digest)
            ).fetchone()
            if row is None:
                artifact_id = f"{kind}-{digest[:12]}-{uuid.uuid4().hex[:4]}"
                conn.execute(
                    "INSERT INTO artifacts (id, kind, path, sha256, size_bytes, created_at, metadata)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (artifact_id, kind, resolved, digest, size, utc_now(), json.dumps(metadata or {}, default=str)),
                )
                row = conn.execute("SELECT * FROM artifacts WHERE id = ?", (artifact_id,)).fetchone()
        return ArtifactRecord.from_row(row)

    def link(self, parent: tuple[str, str], child: tuple[str, str], relation: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO links (parent_type, parent_id, child_type, child_id, relation)"
                " VALUES (?, ?, ?, ?, ?)",
                (*parent, *child, relation),
            )

    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        row = self._conn.execute("SELECT * FROM artifacts WHERE id = ?", (artifact_id,)).fetchone()
        if row is None:
            raise GenlabError(f"no artifact with id {artifact_id!r}.")
        return ArtifactRecord.from_row(row)

    def artifacts_of(self, run_id: str, relation: str) -> list[ArtifactRecord]:
        """Artifacts a run read (``relation="input"``) or wrote (``"output"``)."""
        if relation == "input":
            query = (
                "SELECT a.* FROM artifacts a JOIN links l ON l.parent_type = 'artifact' AND l.parent_id = a.id"
                " WHERE l.child_type = 'run' AND l.child_id = ? AND l.relation = 'input' ORDER BY a.created_at"
            )
        else:
            query = (
                "SELECT a.* FROM artifacts a JOIN links l ON l.child_type = 'artifact' AND l.child_id = a.id"
                " WHERE l.parent_type = 'run' AND l.parent_id = ? AND l.relation = 'output' ORDER BY a.created_at"
            )
        return [ArtifactRecord.from_row(row) for row in self._conn.execute(query, (run_id,)).fetchall()]

    def producers_of(self, artifact_id: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT parent_id FROM links WHERE child_type = 'artifact' AND child_id = ? AND relation = 'output'",
            (artifact_id,),
        ).fetchall()
        return [row["parent_id"] for row in rows]

    def consumers_of(self, artifact_id: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT child_id FROM links WHERE parent_type = 'artifact' AND parent_id = ? AND relation = 'input'",
            (artifact_id,),
        ).fetchall()
        return [row["child_id"] for row in rows]

    def runs_linked_under(self, run_id: str) -> list[RunLink]:
        """Runs linked below ``run_id`` (its steps, library runs, evaluations), oldest link first."""
        rows = self._conn.execute(
            "SELECT child_id, relation FROM links WHERE parent_type = 'run' AND parent_id = ? AND child_type = 'run'"
            " ORDER BY rowid",
            (run_id,),
        ).fetchall()
        return [RunLink(row["child_id"], row["relation"]) for row in rows]

    def runs_linked_above(self, run_id: str) -> list[RunLink]:
        """Runs ``run_id`` is linked below (a reused step can sit under several lifecycle runs), oldest first."""
        rows = self._conn.execute(
            "SELECT parent_id, relation FROM links WHERE child_type = 'run' AND child_id = ? AND parent_type = 'run'"
            " ORDER BY rowid",
            (run_id,),
        ).fetchall()
        return [RunLink(row["parent_id"], row["relation"]) for row in rows]
