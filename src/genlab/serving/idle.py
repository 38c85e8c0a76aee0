"""Scale to zero: free the model after ``--idle-unload`` seconds without work, load it again on demand.

:class:`ModelLifecycle` sits between the routes and the backend. Every request that generates runs
inside :meth:`ModelLifecycle.working`, which loads the weights first if they were freed (a *cold
start*, counted and timed in ``/metrics``) and marks the model busy until the request ends. A
watcher thread unloads the weights once nothing has been working for ``idle_seconds``; it never
unloads under a request in flight, and a request never starts on a half-unloaded model (one lock).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

from genlab.serving.backend import Backend
from genlab.serving.metrics import ServerMetrics

log = logging.getLogger(__name__)


class ModelLifecycle:
    def __init__(self, backend: Backend, metrics: ServerMetrics, idle_seconds: float | None = None) -> None:
        self.backend = backend
        self.metrics = metrics
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._working = 0
        self._last_activity = time.monotonic()
        self.unloads = 0
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def ensure_loaded(self) -> None:
        """Load the weights if they are not in memory; a load is a cold start in the metrics."""
        with self._lock:
            self._load_locked()

    def _load_locked(self) -> None:
        if self.backend.loaded:
            return
        started = time.perf_counter()
        self.backend.load()
        seconds = time.perf_counter() - started
        self.metrics.cold_start(seconds)
        log.info("model loaded in %.2f s", seconds)

    def begin(self) -> None:
        """Mark the model busy, loading it first if needed; pair with :meth:`end`."""
        with self._lock:
            self._working += 1
            try:
                self._load_locked()
            except BaseException:
                self._working -= 1
                raise

    def end(self) -> None:
        with self._lock:
            self._working -= 1
            self._last_activity = time.monotonic()

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        """Keep the model loaded (loading it first if needed) while the block runs."""
        self.begin()
        try:
            yield
        finally:
            self.end()

    def unload_if_idle(self) -> bool:
        """Unload when nothing has worked for ``idle_seconds``; True if it unloaded."""
        if self.idle_seconds is None:
            return False
        with self._lock:
            idle_for = time.monotonic() - self._last_activity
            if self._working or not self.backend.loaded or idle_for < self.idle_seconds:
                return False
            self.backend.unload()
            self.unloads += 1
        log.info("model unloaded after %.1f s idle", idle_for)
        return True

    def start(self) -> None:
        """Start the watcher thread (only with ``idle_seconds``)."""
        if self.idle_seconds is None or self._watcher is not None:
            return
        self._stop.clear()
        self._watcher = threading.Thread(target=self._watch, name="genlab-idle-unload", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(5)
            self._watcher = None

    def _watch(self) -> None:
        assert self.idle_seconds is not None
        interval = min(1.0, self.idle_seconds / 4)
        while not self._stop.wait(interval):
            try:
                self.unload_if_idle()
            except Exception:  # noqa: BLE001 - a failed unload is logged; the watcher keeps going
                log.exception("idle unload failed")
