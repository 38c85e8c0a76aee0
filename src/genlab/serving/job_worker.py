"""The thread that runs async jobs: claims the oldest queued job of a :class:`JobStore` and runs a handler.

Shutdown: :meth:`JobWorker.stop` lets the job in hand finish, or, if its handler gives up because the
server is stopping (the server's handlers watch the same shutdown), leaves it running in the store,
so the next start counts it as interrupted (:meth:`JobStore.recover`: queued again, or failed after
``max_attempts``). Nothing is written to a store that has closed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from genlab.errors import InvalidValueError
from genlab.serving.jobs import Job, JobStore, JobStoreClosedError, one_line

Handler = Callable[[str, dict[str, Any]], dict[str, Any]]

log = logging.getLogger(__name__)


class JobWorker:
    """A thread that claims jobs from ``store`` and runs ``handler(kind, body) -> result dict``.

    A handler exception fails the job with a one-line reason and the worker goes on. The worker wakes
    at once on a submit through the same store, and polls every ``poll_seconds`` for jobs submitted
    by other processes. ``stop`` lets the job in hand finish; a handler that raises once the worker is
    stopping (``stopping``: set by ``ask_to_stop`` or ``stop``) was cut short by the shutdown, and its
    job is left running in the store for the next start to recover.
    """

    def __init__(self, store: JobStore, handler: Handler, *, poll_seconds: float = 0.1, name: str = "genlab-jobs") -> None:
        if poll_seconds <= 0:
            raise InvalidValueError(f"poll_seconds={poll_seconds!r} is not allowed: it must be above 0.")
        self.store = store
        self.handler = handler
        self.poll_seconds = poll_seconds
        self.name = name
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.processed = 0  # jobs this worker finished, completed or failed

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> JobWorker:
        if self.running:
            return self
        self._stopping.clear()
        self.store.add_wakeup(self._wake)
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()
        return self

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def ask_to_stop(self) -> None:
        """Let the thread end after its current job, without waiting (``stop`` waits)."""
        self._stopping.set()
        self._wake.set()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the thread to end after its current job; True if it ended within ``timeout``."""
        self.ask_to_stop()
        if self._thread is not None:
            self._thread.join(timeout)
        self.store.remove_wakeup(self._wake)
        return not self.running

    def run_once(self) -> Job | None:
        """Claim and run one job in the calling thread; returns it as finished, or None if none was queued."""
        job = self.store.claim_next()
        if job is None:
            return None
        try:
            result = self.handler(job.kind, job.body)
            if not isinstance(result, dict):
                raise TypeError(f"the job handler returned {type(result).__name__}, not a dict")
            self.store.complete(job.id, result)
        except Exception as error:  # noqa: BLE001 - any handler failure is the job's, not the worker's
            if self._stopping.is_set():  # cut short by the shutdown: not the job's failure
                log.info("job %s was cut short by the shutdown; the next start recovers it", job.id)
                return None
            log.info("job %s failed: %s", job.id, error)
            self.store.fail(job.id, one_line(error))
        self.processed += 1
        return self.store.get(job.id)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                job = self.run_once()
            except JobStoreClosedError:
                log.warning("job worker %s: the job store closed before the worker stopped", self.name)
                return
            except Exception:  # noqa: BLE001 - a store error (disk full, locked too long): log, retry later
                log.exception("job worker %s: could not claim or finish a job", self.name)
                job = None
            if job is None:
                self._wake.wait(self.poll_seconds)
