"""What genlab's two SQLite stores (lineage runs and serving jobs) share: opening, WAL mode, liveness.

A store file that is not SQLite, or whose pages are damaged, is never reset or replaced: opening it
fails with one sentence naming the file and how to move it aside (:class:`StoreUnreadableError`).

Both stores are opened by several processes at once (DDP ranks, a server and its CLI) and both mark
rows as owned by a process, so a row left behind by a killed owner can be told apart from one whose
owner is still working: a pid alone is not enough (pids are reused), a pid with its start time is.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from genlab.errors import GenlabError

# SQLite's primary result codes for a damaged file and for a file that is not a database at all.
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26


class StoreUnreadableError(GenlabError):
    """A store file that is not an SQLite database, or is damaged."""


def connect_store(path: Path, *, schema: str, what: str) -> sqlite3.Connection:
    """Open (creating if needed) the SQLite store at ``path`` in WAL mode with ``schema`` applied.

    ``PRAGMA quick_check`` reads every page once (milliseconds for a store of a few MB), so damage is
    reported when the store is opened, not half-way through a run that then cannot record itself.
    """
    if path.is_dir():
        raise StoreUnreadableError(f"the {what} {path} is a folder, not a file.")
    conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
    try:
        with unreadable_store_errors(path, what):
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=30000")
            enable_wal(conn)
            problems = [row[0] for row in conn.execute("PRAGMA quick_check(1)")]
            if problems != ["ok"]:
                raise _unreadable(path, what, problems[0] if problems else "its pages are damaged")
            conn.executescript(schema)
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def unreadable_store_errors(path: Path, what: str) -> Iterator[None]:
    """Turn SQLite's "not a database" and "malformed" errors into one sentence naming the file."""
    try:
        yield
    except sqlite3.DatabaseError as error:
        if getattr(error, "sqlite_errorcode", None) not in (SQLITE_CORRUPT, SQLITE_NOTADB):
            raise
        raise _unreadable(path, what, str(error)) from None


def _unreadable(path: Path, what: str, reason: str) -> StoreUnreadableError:
    aside = path.with_name(path.name + ".damaged")
    reason = " ".join(reason.replace("***", "").split())  # quick_check reports over several lines
    return StoreUnreadableError(
        f"the {what} {path} cannot be read ({reason}): move it aside (mv {path} {aside}) to start a new one, "
        "or restore it from a backup; genlab never replaces it by itself."
    )


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
