"""The ONNX Runtime GenAI backend: merged models in int8 (or int4) on CPUs, batched (``--backend onnxruntime-genai``).

ONNX Runtime GenAI (Microsoft's generation loop around ONNX Runtime, a 40 MB wheel, no compiler) runs
the model converted once by :mod:`genlab.serving.backends.ort_genai_model` (int8 ``MatMulNBits``
weights by default: int4 is faster by about a fifth and lost 1.3 ROUGE-1 points on DialogSum). It is
genlab's default for deployed, adapter-free models: ``bench/backends.py`` measured it against
genlab's engine, llama.cpp and CTranslate2 (the table is in the README).

How requests run: one worker thread owns the ``og.Model`` and its ``og.Engine`` (ORT GenAI 0.18's
request scheduler). Each choice of each request (``n`` choices are ``n`` rows) is one engine
``Request`` with one turn; ``Engine.run`` decodes every admitted row one token per step and returns
the step's events (a token, a finished turn). On CPU the engine batches *statically* (its dynamic
batching needs the paged-attention graph the builder writes for CUDA only, measured here): it
decodes up to ``max_batch`` rows together, and rows that arrive meanwhile start when that batch has
finished. Rows are handed to the engine in arrival order, at most ``max_batch`` in flight, so no
client waits behind more than one batch (a later request never overtakes an earlier one); an idle
worker waits :data:`BATCH_WINDOW_SECONDS` after a request for the ones sent with it.

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
    ) -> None:
        super().__init__(model, adapters=adapters, max_batch=max_batch, model_id=model_id)
        self._og = import_library("onnxruntime-genai")
        self.converted = ort_model(model, precision)
        self._setup(self.converted.folder, self.converted.context_window, context_window=context_window, threads=threads)
        self.grammars = OrtGrammars()  # structured outputs and tool calls, through llguidance
        self._steps = self._rows_stepped = 0  # the og.Model is self._weights; its og.Engine lives in the worker thread (the engine's rule)

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
        """(decode steps, rows summed over them): their ratio is the mean batch size."""
        return self._steps, self._rows_stepped

    # --- the worker ------------------------------------------------------------------------------

    def _load_locked(self) -> Any:
        if self._weights is None:
            og = self._og
            config = og.Config(str(self.model_path))
            config.clear_providers()  # CPU
            config.overlay(json.dumps({
                "model": {"decoder": {"session_options": {"intra_op_num_threads": self.threads, "inter_op_num_threads": 1}}},
                "engine": {"static_batching": {"max_batch_size": self.max_batch}},
            }))  # fmt: skip
            self._weights = og.Model(config)
        return self._weights

    def _admit(self, in_flight: int, block: bool) -> list[_Request] | None:
        """Waiting requests, oldest first, while their rows fit beside ``in_flight`` (None: stop the worker)."""
        with self._wake:
            if block:  # idle until now: wait for the first request, then a moment for the clients sent with it
                self._wake.wait_for(lambda: bool(self._waiting))
                deadline = time.monotonic() + BATCH_WINDOW_SECONDS
                while len(self._waiting) < self.max_batch and (left := deadline - time.monotonic()) > 0:
                    self._wake.wait(left)
            taken: list[_Request] = []
            while self._waiting:
                first = self._waiting[0]
                if first is STOP_WORKER:
                    return None if not taken and in_flight == 0 else taken
                n = first.settings.num_return_sequences
                if in_flight and in_flight + n > self.max_batch:
                    break
                taken.append(self._waiting.pop(0))
                in_flight += n
            return taken

    def _work(self) -> None:
        turns: dict[int, _Turn] = {}  # id of the engine request -> its turn
        engine: Any = None  # (model, og.Engine, event buffer), made here: an engine is used only by the thread that made it
        while True:
            admitted = self._admit(len(turns), block=not turns)
            if admitted is None:
                return
            try:
                with self._lock:
                    if turns and self._weights is not engine[0]:
                        raise RuntimeError("the model was unloaded while this request was generating")
                    model = self._load_locked()
                    if engine is None or engine[0] is not model:
                        made = self._og.Engine(model)
                        engine = (model, made, made.create_event_buffer(max(16, 2 * self.max_batch)))
                    for request in admitted:
                        self._begin(engine[1], request, turns)
                    admitted = []  # begun: a failure from here on is the engine's, failing the rows in flight
                    events = list(engine[1].run(engine[2])) if turns else []
                self._dispatch(events, turns)
            except Exception as error:  # noqa: BLE001 - the rows in flight fail, the worker goes on
                failed = {id(t.row.request): t.row.request for t in turns.values()} | {id(r): r for r in admitted}
                for turn in turns.values():
                    _close(turn.engine_request)
                turns.clear()
                engine = None  # a fresh engine for what comes next
                for request in failed.values():
                    if not request.handle.done:
                        request.handle.fail(error)

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

    def _dispatch(self, events: list[Any], turns: dict[int, _Turn]) -> None:
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
            self._steps += 1
            self._rows_stepped += stepped


def _int32(ids: list[int]) -> Any:
    import numpy as np

    return np.asarray(ids, dtype=np.int32)


def _close(engine_request: Any) -> None:
    try:
        engine_request.close()
    except RuntimeError:  # already closed or unknown to a dropped engine
        pass
