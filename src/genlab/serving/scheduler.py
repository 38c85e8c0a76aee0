"""Dynamic batching: one thread owns the generation engine and decodes every request in flight together.

HTTP threads call :meth:`Scheduler.submit` with a request's rows (one per choice, built by
:meth:`GenerationEngine.new_rows`); the rows wait in an open queue that hands out free slots fairly
between client requests (:mod:`genlab.serving.fair_queue`: a request's several prompts share one
group, so a huge request does not starve a short one). The scheduler thread runs
:meth:`GenerationEngine.decode` on that queue, so a request arriving while others decode joins the
running batch at the next step (continuous batching) and all share each forward pass. Between two
steps the thread publishes what each row generated to its request's :class:`QueueHandle` (streaming),
ends rows whose client went away, and finishes requests whose rows are all done.

``threads`` sets torch's intra-op threads for decoding. On a machine whose cores are busy with other
work, one thread can be several times faster than two: a batched forward pass splits its larger
matrix products across threads that then wait for each other at every barrier (measured here under a
load of ~10 on 2 cores: 16.4 tokens/s with 1 thread against 1.6 with 2, at batch 8).

The scheduler thread also holds the engine's reordered fp32 weights
(:mod:`genlab.generation.packed_linear`) for its whole life, and reorders them itself: a torch
thread pool started by another thread (reordering in the thread that loads the model was enough)
leaves libgomp with more pool threads than cores, and it then stops the workers spinning between
parallel regions -- each of a decode step's ~200 small matrix products then waits for a sleeping
worker to wake. Measured with ``bench/serve.py`` (default model, 2 idle cores): single stream 13.0
-> 22.1 tokens/s, 8 clients batched 91.3 -> 136.5.

:meth:`Scheduler.call_between_steps` runs a function in the scheduler thread where no forward pass
runs (between two steps, or while idle): how an adapter joins or leaves the model of a running batch.

``max_batch=1`` turns batching off: one row decodes at a time, in arrival order (the baseline of
``bench/serve.py``).

Streamed text is held back where it could still change: a trailing half of a multi-byte character,
and, for a request with stop sequences, the last characters that could be the start of one (the
final text is cut before the stop sequence, and the stream must add up to the final text).

Written here because no maintained library batches requests into genlab's own engine (vLLM's
scheduler serves vLLM's engine, on GPUs).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from genlab.generation.engine import GenerationEngine
from genlab.generation.rows import DecodeRow
from genlab.serving.backend import ChoiceResult, GenerationResult, QueueHandle
from genlab.serving.fair_queue import FairQueue

log = logging.getLogger(__name__)


@dataclass
class _Request:
    handle: QueueHandle
    rows: list[DecodeRow]
    prompt_tokens: int
    hold_back: int  # characters kept back from the stream: longest stop sequence - 1
    group: Hashable  # the client request it belongs to: slots are shared fairly between groups
    sent: list[str] = field(default_factory=list)  # text streamed so far, per choice
    seen: list[int] = field(default_factory=list)  # generated tokens already published, per choice
    closed: list[bool] = field(default_factory=list)  # the end of the choice already published

    def __post_init__(self) -> None:
        self.sent = [""] * len(self.rows)
        self.seen = [0] * len(self.rows)
        self.closed = [False] * len(self.rows)


class _OpenQueue:
    """The rows waiting to decode, as the engine's :class:`RowSource`; filled from any thread."""

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler

    def take(self, limit: int) -> list[DecodeRow]:
        return self._scheduler._take(limit)


class Scheduler:
    """Decode submitted requests together on ``engine`` in a background thread; see the module docstring."""

    def __init__(self, engine: GenerationEngine, *, threads: int | None = None, name: str = "genlab-scheduler") -> None:
        self.engine = engine
        self.threads = threads  # torch intra-op threads for decoding (None: leave torch's setting)
        self._lock = threading.Condition()
        self._waiting: FairQueue[tuple[DecodeRow, _Request]] = FairQueue()
        self._active: dict[int, _Request] = {}  # id(request) -> request, rows taken by the engine
        self._decoding: dict[int, Hashable] = {}  # id(row) -> its group, for rows in the batch
        self._stopping = False
        self._calls: list[tuple[Callable[[], Any], Future]] = []  # work to run between two steps
        self.steps = 0  # forward passes so far (prefills and decode steps)
        self.rows_stepped = 0  # rows summed over those passes: rows_stepped / steps is the mean batch
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # --- any thread ----------------------------------------------------------------------------------

    def submit(self, rows: list[DecodeRow], prompt_tokens: int, *, group: Hashable | None = None) -> QueueHandle:
        """Queue a request's rows; the handle streams its text and gives its result.

        ``group``: the client request these rows belong to (its several prompts share one); None: their own.
        """
        if not rows:
            raise ValueError("a request needs at least one row")
        handle = QueueHandle()
        stops = [len(s) for row in rows for s in row.settings.stop]
        own_group = group if group is not None else object()  # alone: a group of its own
        request = _Request(handle, rows, prompt_tokens, hold_back=max(stops, default=1) - 1, group=own_group)
        with self._lock:
            if self._stopping:
                raise RuntimeError("the scheduler has stopped")
            for row in rows:
                row.request = request
            self._waiting.push(request.group, [(row, request) for row in rows])
            self._lock.notify()
        return handle

    @property
    def waiting(self) -> int:
        """Rows queued, not yet decoding."""
        with self._lock:
            return len(self._waiting)

    @property
    def running(self) -> int:
        """Requests with rows decoding."""
        with self._lock:
            return len(self._active)

    @property
    def idle(self) -> bool:
        with self._lock:
            return not self._waiting and not self._active

    def call_between_steps(self, work: Callable[[], Any]) -> Any:
        """Run ``work`` in the scheduler thread between two forward passes (or while idle); return its result.

        For changes to the model that a batch must never see half-done, such as adding an adapter.
        """
        if threading.current_thread() is self._thread:
            return work()
        done: Future = Future()
        with self._lock:
            if self._stopping:
                raise RuntimeError("the scheduler has stopped")
            self._calls.append((work, done))
            self._lock.notify()
        return done.result()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Fail what is queued, let the current step end, and stop the thread."""
        with self._lock:
            self._stopping = True
            waiting = self._waiting.drain()
            self._lock.notify()
        for _, request in waiting:
            if not request.handle.done:
                request.handle.fail(RuntimeError("the server is shutting down"))
        self._thread.join(timeout)
        self._run_calls(RuntimeError("the scheduler has stopped"))

    # --- the scheduler thread ------------------------------------------------------------------------

    def _take(self, limit: int) -> list[DecodeRow]:
        taken: list[DecodeRow] = []
        dropped: list[_Request] = []
        with self._lock:
            while len(taken) < limit and not self._stopping and (next_row := self._waiting.pop()) is not None:
                group, (row, request) = next_row
                if request.handle.cancelled.is_set() or request.handle.done:  # the client left, or it failed
                    row.finish_reason = "stop"
                    if id(request) not in self._active:
                        dropped.append(request)
                    continue
                self._active[id(request)] = request
                self._decoding[id(row)] = group
                self._waiting.started(group)
                taken.append(row)
        for request in dropped:
            if all(row.finish_reason is not None for row in request.rows) and not request.handle.done:
                request.handle.finish(self._result(request))
        return taken

    def _loop(self) -> None:
        if self.threads is not None:
            import torch

            torch.set_num_threads(self.threads)
        # Reordered once for the scheduler's life, in the thread that decodes (see the module docstring).
        with self.engine.hold_packed_weights():
            self._serve_until_stopped()

    def _serve_until_stopped(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._stopping and not self._calls:
                    self._lock.wait()
                if self._stopping:
                    return
            self._run_calls()
            if not self.waiting:  # woken for a call only
                continue
            try:
                for _ in self.engine.decode(_OpenQueue(self)):
                    self.steps += 1
                    self._publish()
            except Exception as error:  # noqa: BLE001 - a failed step fails its requests, not the server
                log.exception("generation failed")
                self._fail_active(error)

    def _run_calls(self, refuse: BaseException | None = None) -> None:
        """Run (or, stopping, refuse) the work :meth:`call_between_steps` queued."""
        with self._lock:
            calls, self._calls = self._calls, []
        for work, done in calls:
            if refuse is not None:
                done.set_exception(refuse)
                continue
            try:
                done.set_result(work())
            except BaseException as error:  # noqa: BLE001 - the caller gets the error
                done.set_exception(error)

    def _publish(self) -> None:
        self._run_calls()  # between two steps: no forward pass runs
        with self._lock:
            requests = list(self._active.items())
        for key, request in requests:
            for choice, row in enumerate(request.rows):
                # A row that took part in the last forward pass has one more token, or has just ended.
                if len(row.generated) != request.seen[choice] or (row.finish_reason and not request.closed[choice]):
                    self.rows_stepped += 1
                    request.seen[choice] = len(row.generated)
                    request.closed[choice] = row.finish_reason is not None
                    self._stream(request, choice, row)
            if request.handle.cancelled.is_set():
                for row in request.rows:
                    row.finish_reason = row.finish_reason or "stop"
            self._release_ended(request)
            if all(row.finish_reason is not None for row in request.rows):
                with self._lock:
                    self._active.pop(key, None)
                request.handle.finish(self._result(request))

    def _release_ended(self, request: _Request) -> None:
        """Give back the batch slots of ``request``'s rows that have ended (the fair queue counts them)."""
        with self._lock:
            for row in request.rows:
                if row.finish_reason is not None and id(row) in self._decoding:
                    self._waiting.ended(self._decoding.pop(id(row)))

    def _stream(self, request: _Request, choice: int, row: DecodeRow) -> None:
        text = self.engine.text_of(row)
        if row.finish_reason is None:
            text = text.rstrip("\ufffd")  # half of a multi-byte character: wait for the rest
            if request.hold_back:
                text = text[: max(len(request.sent[choice]), len(text) - request.hold_back)]
        sent = request.sent[choice]
        if len(text) > len(sent) and text.startswith(sent):
            request.handle.put(choice, text[len(sent) :])
            request.sent[choice] = text

    def _result(self, request: _Request) -> GenerationResult:
        choices = [
            ChoiceResult(self.engine.text_of(row), len(row.generated), row.finish_reason or "length")
            for row in request.rows
        ]
        return GenerationResult(request.prompt_tokens, choices)

    def _fail_active(self, error: BaseException) -> None:
        with self._lock:
            failed = list(self._active.values())
            self._active.clear()
            for group in self._decoding.values():
                self._waiting.ended(group)
            self._decoding.clear()
        for request in failed:
            for row in request.rows:
                row.finish_reason = row.finish_reason or "stop"
            if not request.handle.done:
                request.handle.fail(error)

