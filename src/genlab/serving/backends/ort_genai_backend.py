"""The ONNX Runtime GenAI backend: merged models in int8 (or int4) on CPUs, batched (``--backend onnxruntime-genai``).

ONNX Runtime GenAI (Microsoft's generation loop around ONNX Runtime, a 40 MB wheel, no compiler) runs
the model converted once by :mod:`genlab.serving.backends.ort_genai_model` (int8 ``MatMulNBits``
weights by default: int4 is faster by about a fifth and lost 1.3 ROUGE-1 points on DialogSum). It is
genlab's default for deployed, adapter-free models: ``bench/backends.py`` measured it against
genlab's engine, llama.cpp and CTranslate2 (the table is in the README).

How requests run: each choice of each request (``n`` choices are ``n`` rows) is one engine
``Request`` with one turn; ``og.Engine.run`` (ORT GenAI 0.18's request scheduler) decodes every
admitted row one token per step and returns the step's events (a token, a finished turn). On CPU the
engine batches *statically* (its dynamic batching needs the paged-attention graph the builder writes
for CUDA only, measured here): it decodes its rows together, and rows that arrive meanwhile start when
that batch has finished. An engine is used only by the thread that made it, so the backend runs
*lanes*: one thread per lane (``lanes``, by default one per core in ``threads``), each with its own
engine, and a dispatcher thread that hands waiting requests to them in arrival order (a later request
never overtakes an earlier one; an idle backend waits :data:`BATCH_WINDOW_SECONDS` after a request for
the ones sent with it):

- a request alone on an idle backend decodes on the *solo* engine, whose model runs every thread
  (one stream: 141-155 tokens/s on the default model, 2 cores); requests that arrive while it
  decodes go to the other lanes at once (sharing the cores with it) rather than wait for its end;
- otherwise each request goes to the lane with the fewest rows, while it has fewer than
  ``lane_batch`` (``max_batch`` split over the lanes). The lanes' engines share one copy of the model
  loaded with one thread: a burst of 8 on two one-thread lanes decoded 345-410 tokens/s where one
  engine on both threads decoded 263-326 (its threads wait for each other on every small matrix;
  int8 in blocks of 32, the same machine).

So with more than one lane the weights are loaded twice (the solo model and the lanes' model: about
250 MB more for the default model in int8, a peak of 970 MB against 720); ``lanes=1`` loads them once,
one engine on every thread. Unloading (scale to zero) lets the weights go once the rows in flight have
finished.

What it honours: streaming, ``stop``, ``max_tokens``, ``n``, ``temperature`` (0 is greedy),
``top_k``, ``top_p``, ``repetition_penalty``, exact usage counts (the prompt's tokens and each
generated token, the end token not counted), structured outputs (``response_format`` json_object
and json_schema, vLLM's ``structured_outputs``) and tools (``auto``, ``required`` and a named
function) through ORT GenAI's llguidance (``set_guidance``, :mod:`~genlab.serving.backends.ort_guidance`).
What it refuses with a 400 naming the field (:data:`features` is empty): ``seed`` with sampling,
``logprobs``, ``echo``, ``logit_bias``, ``frequency_penalty``, ``presence_penalty``, token-id
prompts, and adapters (``--adapter``: merge the adapter first and serve the merged folder).

Seeds: the engine seeds a request (``TurnOptions.set_seed``) only when it batches dynamically, which
CPUs do not have in 0.18 ("A per-turn seed requires an Engine configured for dynamic batching"), so a
``seed`` with sampling is refused in one sentence rather than accepted and not honoured. Greedy rows
do not depend on what shares their batch (a test checks it). Log-probabilities: the engine hands out
tokens, not logits (``Generator.get_logits`` is the one-generator API, which does not batch).

Written here rather than taken from a library: the hand-off of requests to the engine; the per-row
stream (incremental text, stop sequences, counts) and the checks every request passes are
:mod:`~genlab.serving.backends.converted_backend`'s, shared with CTranslate2; tokenising and chat
formatting use the model's HF tokenizer, as every genlab backend does.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from genlab.errors import InvalidValueError
from genlab.generation.settings import GenerationSettings
from genlab.serving.backend import GenerationResult, QueueHandle
from genlab.serving.backends import import_library
from genlab.serving.backends.converted_backend import STOP_WORKER, ConvertedModelBackend, StreamedRow
from genlab.serving.backends.ort_genai_model import ort_model
from genlab.serving.backends.ort_guidance import Guidance, OrtGrammars

# An idle engine waits this long after a request for others sent at once (a batch started cannot take rows
# that come later on CPU): 8 clients that send together decode together, for 5 ms more on a first token.
BATCH_WINDOW_SECONDS = 0.005


@dataclass
class _Request:
    prompt_ids: list[int]
    settings: GenerationSettings
    handle: QueueHandle
    guidance: Guidance | None = None
    rows: list[StreamedRow] = field(default_factory=list)
    pending: int = 0  # rows whose turn has not finished


@dataclass
class _Turn:
    """One row in the engine: its engine request and turn, and the row it feeds."""

    engine_request: Any
    turn_id: int
    row: StreamedRow
    cancelled: bool = False


@dataclass
class _Models:
    """The loaded weights: the solo engine's (every thread; None with one lane) and the lanes' (one thread each)."""

    solo: Any
    lane: Any


@dataclass
class _Lane:
    """One decoding thread and what the dispatcher gave it (guarded by the backend's ``_wake``)."""

    index: int
    inbox: list[_Request] = field(default_factory=list)  # given, not yet begun
    rows: int = 0  # rows given and not finished
    solo: bool = False  # its batch runs on the solo engine
    stopping: bool = False
    thread: threading.Thread | None = None


class OrtGenaiBackend(ConvertedModelBackend):
    """Serve one model with ONNX Runtime GenAI: ``OrtGenaiBackend("smollm2-135m-instruct")`` (converted once)."""

    name = "onnxruntime-genai"
    seed_refusal = (
        "its engine seeds a request only with dynamic batching, which it has not on CPUs; leave seed out, or use --backend genlab."
    )

    def __init__(
        self,
        model: str,
        *,
        adapters: Mapping[str, str] | None = None,
        context_window: int | None = None,
        threads: int | None = None,
        max_batch: int = 8,
        precision: str = "int8",
        model_id: str | None = None,
        lanes: int | None = None,
    ) -> None:
        super().__init__(model, adapters=adapters, max_batch=max_batch, model_id=model_id)
        self._og = import_library("onnxruntime-genai")
        self.converted = ort_model(model, precision)
        self._setup(self.converted.folder, self.converted.context_window, context_window=context_window, threads=threads)
        self.lanes = lanes if lanes is not None else self.threads
        if not 1 <= self.lanes <= self.threads:
            raise InvalidValueError(f"lanes={self.lanes} is not allowed: it must be from 1 to threads ({self.threads}), one core per lane.")
        self.lane_batch = max(1, -(-max_batch // self.lanes))  # rows one lane decodes together
        self.grammars = OrtGrammars()  # structured outputs and tool calls, through llguidance
        self._stats: dict[str, list[int]] = {}  # "solo", "lane 0", ... -> [decode steps, rows summed over them]

    def submit(
        self,
        model_id: str,
        prompt: str,
        settings: GenerationSettings,
        *,
        formatted: bool = False,
        group: str | None = None,
        constraint: Guidance | None = None,
    ) -> QueueHandle:
        ids = self._prompt_ids(model_id, prompt, settings, formatted)
        unsupported = [name for name, value in (("logprobs", settings.logprobs), ("prompt_logprobs", settings.prompt_logprobs),
                       ("logit_bias", settings.logit_bias), ("frequency_penalty", settings.frequency_penalty),
                       ("presence_penalty", settings.presence_penalty)) if value]  # fmt: skip
        if unsupported:
            raise InvalidValueError(f"{unsupported[0]} is not supported by the onnxruntime-genai backend.")
        guidance = constraint() if constraint is not None else None
        return self._enqueue(_Request(ids, settings, QueueHandle(), guidance), ids, settings)

    def decode_stats(self) -> tuple[int, int]:
        """(decode steps, rows summed over them) of every engine: their ratio is the mean batch size."""
        stats = self.engine_stats().values()
        return sum(s[0] for s in stats), sum(s[1] for s in stats)

    def engine_stats(self) -> dict[str, tuple[int, int]]:
        """(decode steps, rows summed over them) per engine: ``solo`` and ``lane 0``, ``lane 1``, ..."""
        return {name: (steps, rows) for name, (steps, rows) in list(self._stats.items())}

    # --- the worker ------------------------------------------------------------------------------

    def _load_locked(self) -> _Models:
        if self._weights is None:
            if self.lanes == 1:  # one engine on every thread
                self._weights = _Models(solo=None, lane=self._load_model(self.threads, self.max_batch))
            else:  # a lone request on every thread; several spread over one-thread lanes that share one copy
                self._weights = _Models(solo=self._load_model(self.threads, self.max_batch), lane=self._load_model(1, self.lane_batch))
        return self._weights

    def _load_model(self, threads: int, batch: int) -> Any:
        og = self._og
        config = og.Config(str(self.model_path))
        config.clear_providers()  # CPU
        config.overlay(json.dumps({
            "model": {"decoder": {"session_options": {"intra_op_num_threads": threads, "inter_op_num_threads": 1}}},
            "engine": {"static_batching": {"max_batch_size": batch}},
        }))  # fmt: skip
        return og.Model(config)

    def unload(self) -> None:
        super().unload()
        with self._wake:
            self._wake.notify_all()  # idle lanes drop their engines, which hold the weights

    # --- the dispatcher: hands waiting requests to the lanes ------------------------------------------

    def _work(self) -> None:
        lanes = [_Lane(index) for index in range(self.lanes)]
        self._stats.setdefault("solo", [0, 0])
        for lane in lanes:
            self._stats.setdefault(f"lane {lane.index}", [0, 0])
            lane.thread = threading.Thread(target=self._lane_work, args=(lane,), name=f"genlab-{self.name}-lane{lane.index}", daemon=True)
            lane.thread.start()
        with self._wake:
            while True:
                self._wake.wait_for(lambda: bool(self._waiting))
                if not any(lane.rows for lane in lanes):  # idle until now: a moment for the clients sent with this one
                    deadline = time.monotonic() + BATCH_WINDOW_SECONDS
                    while len(self._waiting) < self.max_batch and (left := deadline - time.monotonic()) > 0:
                        self._wake.wait(left)
                while self._waiting:
                    if self._waiting[0] is STOP_WORKER:
                        if any(lane.rows for lane in lanes):
                            self._wake.wait()  # the rows in flight finish first
                            continue
                        for lane in lanes:
                            lane.stopping = True
                        self._wake.notify_all()
                        break
                    if self._assign(lanes):
                        self._wake.notify_all()
                    else:
                        self._wake.wait()  # a lane finishes rows first
                if all(lane.stopping for lane in lanes):
                    self._waiting.pop(0)
                    break
        for lane in lanes:
            lane.thread.join()

    def _assign(self, lanes: list[_Lane]) -> bool:
        """Give the oldest waiting request to a lane (True), or leave it waiting (False); ``_wake`` is held.

        A request alone on an idle backend decodes on the solo engine (every thread); otherwise each goes to
        the lane with the fewest rows, while it has fewer than ``lane_batch``. A lane running the solo
        engine takes nothing more, but the other lanes do: a long answer on the solo engine must not hold
        back the requests that arrive meanwhile (they share the cores with it until it ends).
        """
        request: _Request = self._waiting[0]
        rows = request.settings.num_return_sequences
        open_lanes = [lane for lane in lanes if not lane.solo]
        if not open_lanes:
            return False
        lane = min(open_lanes, key=lambda lane: lane.rows)
        if len(open_lanes) == len(lanes) > 1 and not any(lane.rows for lane in lanes) and len(self._waiting) == 1:
            lane.solo = True
        elif lane.rows and lane.rows + rows > self.lane_batch:
            return False
        lane.inbox.append(self._waiting.pop(0))
        lane.rows += rows
        return True

    # --- a lane: one thread, its own og.Engine (an engine is used only by the thread that made it) ----

    def _lane_work(self, lane: _Lane) -> None:
        turns: dict[int, _Turn] = {}  # id of the engine request -> its turn
        engines: dict[bool, tuple[Any, Any, Any]] = {}  # solo? -> (og.Model, og.Engine, event buffer)
        engine: tuple[Any, Any, Any] | None = None
        while True:
            with self._wake:
                while not turns and not lane.inbox:
                    if lane.stopping:
                        return
                    if engines and self._weights is None:  # unloaded (scale to zero): let the weights go
                        engines.clear()
                        engine = None
                    self._wake.wait()
                admitted, lane.inbox = lane.inbox, []
                solo = lane.solo
            try:
                if not turns:  # a new batch: on the solo engine or this lane's, made or remade for the weights loaded now
                    with self._lock:
                        models = self._load_locked()
                    model = models.solo if solo else models.lane
                    engine = engines.get(solo)
                    if engine is None or engine[0] is not model:
                        made = self._og.Engine(model)
                        engine = engines[solo] = (model, made, made.create_event_buffer(max(16, 2 * self.max_batch)))
                assert engine is not None
                for request in admitted:
                    self._begin(engine[1], request, turns)
                admitted = []  # begun: a failure from here on is the engine's, failing the rows in flight
                events = list(engine[1].run(engine[2])) if turns else []
                self._dispatch(events, turns, self._stats["solo" if solo else f"lane {lane.index}"])
            except Exception as error:  # noqa: BLE001 - the rows in flight fail, the lane goes on
                failed = {id(t.row.request): t.row.request for t in turns.values()} | {id(r): r for r in admitted}
                for turn in turns.values():
                    _close(turn.engine_request)
                turns.clear()
                engines.clear()  # fresh engines for what comes next
                for request in failed.values():
                    if not request.handle.done:
                        request.handle.fail(error)
            with self._wake:
                rows = len(turns) + sum(r.settings.num_return_sequences for r in lane.inbox)
                if rows < lane.rows:
                    self._wake.notify_all()  # the dispatcher may be waiting for room in a lane
                lane.rows = rows
                lane.solo = lane.solo and rows > 0

    def _begin(self, engine: Any, request: _Request, turns: dict[int, _Turn]) -> None:
        """One engine request and turn per choice of ``request``; a request the engine refuses fails alone."""
        begun: dict[int, _Turn] = {}
        try:
            self._begin_rows(engine, request, begun)
        except RuntimeError as error:  # e.g. a grammar llguidance cannot compile: this request's error only
            for turn in begun.values():
                _close(turn.engine_request)
            request.handle.fail(InvalidValueError(f"ONNX Runtime GenAI refused the request: {str(error).strip().rstrip('.')}."))
            return
        turns.update(begun)
        request.pending = len(begun)

    def _begin_rows(self, engine: Any, request: _Request, turns: dict[int, _Turn]) -> None:
        og, s = self._og, request.settings
        tokens = _int32(request.prompt_ids)
        for choice in range(s.num_return_sequences):
            row = StreamedRow(request, choice, self._decode)
            request.rows.append(row)
            options = og.RequestOptions()
            options.set_max_session_tokens(len(request.prompt_ids) + s.max_new_tokens)
            engine_request = engine.create_request(options=options)
            turn = og.TurnOptions(engine_request)
            turn.set_max_generated_tokens(s.max_new_tokens)
            if s.temperature == 0:
                turn.set_do_sample(False)
            else:
                turn.set_do_sample(True)
                turn.set_temperature(s.temperature)
                turn.set_top_k(s.top_k)  # 0: no top-k, as genlab's
                turn.set_top_p(s.top_p)
            turn.set_repetition_penalty(s.repetition_penalty)
            try:
                if request.guidance is not None:
                    turn.set_guidance(request.guidance.kind, request.guidance.text)
                turn_id = engine_request.begin_turn(tokens, turn)
            except RuntimeError:
                _close(engine_request)
                raise
            turns[id(engine_request)] = _Turn(engine_request, turn_id, row)

    def _dispatch(self, events: list[Any], turns: dict[int, _Turn], stats: list[int]) -> None:
        og = self._og
        token_flag, finished_flag, failed_flag = og.EngineEventFlags.TOKEN, og.EngineEventFlags.TURN_FINISHED, og.EngineEventFlags.FAILED
        stepped = 0
        for event in events:
            turn = turns.get(id(event.request))
            if turn is None:
                continue
            flags = event.flags
            if flags & failed_flag:
                raise RuntimeError(f"ONNX Runtime GenAI failed a request: {event.error_code.name}")
            if flags & token_flag:
                stepped += 1
                if turn.row.on_token(int(event.token), self._end_ids) and not turn.cancelled and not flags & finished_flag:
                    turn.cancelled = True  # a stop sequence, the client left: end the turn (the engine sends TURN_FINISHED)
                    turn.engine_request.cancel_turn(turn.turn_id)
            elif not flags & finished_flag and turn.row.request.handle.cancelled.is_set() and not turn.cancelled:
                turn.cancelled = True
                turn.engine_request.cancel_turn(turn.turn_id)
            if flags & finished_flag:
                if not turn.row.done:  # the engine ended the turn itself: end of sequence, grammar complete, length
                    length = event.finish_reason in (og.FinishReason.MAX_GENERATED_TOKENS, og.FinishReason.MAX_SESSION_TOKENS)
                    turn.row.end("length" if length else "stop")
                del turns[id(event.request)]
                _close(turn.engine_request)
                request = turn.row.request
                request.pending -= 1
                if request.pending == 0:
                    request.handle.finish(GenerationResult(len(request.prompt_ids), [row.result() for row in request.rows]))
        for turn in list(turns.values()):  # a client that left while its row produced nothing this step
            if turn.row.request.handle.cancelled.is_set() and not turn.cancelled:
                turn.cancelled = True
                turn.engine_request.cancel_turn(turn.turn_id)
        if stepped:
            stats[0] += 1
            stats[1] += stepped


def _int32(ids: list[int]) -> Any:
    import numpy as np

    return np.asarray(ids, dtype=np.int32)


def _close(engine_request: Any) -> None:
    try:
        engine_request.close()
    except RuntimeError:  # already closed or unknown to a dropped engine
        pass
