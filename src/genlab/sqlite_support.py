"""What genlab's two SQLite stores (lineage runs and serving jobs) share: WAL mode and process liveness.

Both stores are opened by several processes at once (DDP ranks, a server and its CLI) and both mark
rows as owned by a process, so a row left behind by a killed owner can be told apart from one whose
owner is still working: a pid alone is not enough (pids are reused), a pid with its start time is.
"""

from __future__ import annotations

import sqlite3
import time

import psutil


def enable_wal(conn: sqlite3.Connection, seconds: float = 30.0) -> None:
    """Switch to write-ahead logging, waiting out other processes opening the same new store.

    Switching the journal mode needs an exclusive lock and SQLite reports "database is locked" at once,
    without the busy handler, when another process holds one (several DDP ranks starting together).
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None if there is no such process."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
