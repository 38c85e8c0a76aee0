"""What genlab's two SQLite stores (lineage runs and serving jobs) share: WAL mode and process liveness.

Both stores are opened by several processes at once (DDP ranks, a server and its CLI) and both mark
rows as owned by a process, so a row left behind by a killed owner can be told apart from one whose
owner is still working: a pid alone is not enough (pids are reused), a pid with its start time is.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from pathlib import Path

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
    """When process ``pid`` started, to tell it from a later process with the same pid; None if it is gone.

    On Linux this is seconds after boot, read from ``/proc/<pid>/stat``. psutil's ``create_time`` adds
    the boot time in whole seconds (``btime``), which the kernel derives from the wall clock: an NTP
    adjustment can move it by a second while the process runs, and a live owner then looked dead (a
    lifecycle run was marked failed mid-run that way). Elsewhere psutil's ``create_time`` is used.
    The value is for comparing, not for showing.
    """
    if sys.platform.startswith("linux"):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # after "pid (comm)"
            return int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime, in clock ticks
        except (OSError, IndexError, ValueError):
            return None
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
