"""The CTranslate2 backend: merged (and int8-quantised) models on CPUs, batched (``--backend ctranslate2``).

CTranslate2 (OpenNMT's inference engine, a wheel with its own int8 CPU kernels, no compiler) runs the
model converted once by :mod:`genlab.serving.backends.ctranslate2_model`. The deploy stage serves a
merged model with it when ONNX Runtime GenAI (the default, int8) cannot, or when the recipe asks for
it: ``bench/backends.py`` measured both against genlab's engine and llama.cpp (the table is in the README).

How requests run: one worker thread owns the ``ctranslate2.Generator``. It takes the oldest waiting
request and, with it, every other waiting request that samples the same way (temperature, top-k,
top-p, repetition penalty), up to ``max_batch`` rows (a request with ``n`` choices is ``n`` rows), and
decodes them in one ``generate_batch`` call; CTranslate2 drops finished rows from the batch as it goes.
Requests that arrive meanwhile wait for the next batch (CTranslate2 batches statically: no row joins
a batch once it started). Text streams from ``generate_batch``'s per-token callback, which also ends
a row at its own ``max_tokens``, at a stop sequence or when its client went away.

What it honours: streaming, ``stop``, ``max_tokens``, ``n``, ``temperature`` (0 is greedy), ``top_k``,
``top_p``, ``repetition_penalty`` (CTRL's, over prompt and answer, as transformers'), and exact usage counts (the prompt's tokens and each generated token, the end token not counted). What it
refuses with a 400 naming the field (:data:`features` is empty): ``seed`` with sampling, ``logprobs``, ``echo``,
``logit_bias``, ``frequency_penalty``, ``presence_penalty``, token-id prompts, tools and structured
outputs (no grammar hook), and adapters (``--adapter``: merge the adapter first, ``genlab adapters
merge``, and serve the merged folder; several adapters per batch are genlab's engine's job).

Seeds: CTranslate2 samples with a random generator of its own worker thread, which no call from
Python can seed for one request (``ctranslate2.set_random_seed`` seeds the calling thread's), so a
``seed`` with sampling (temperature above 0) is refused in one sentence naming it rather than
accepted and not honoured; a greedy request ignores its seed, as every backend does. Greedy requests
batch freely: a row's greedy answer does not depend on what shares its batch (a test checks it).

Written here rather than taken from a library: the batching of waiting requests and the per-row
stream (incremental text, stop sequences, counts) around ``generate_batch``; everything that touches
the model is CTranslate2's.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from genlab.errors import InvalidValueError, ModelNotFoundError, PromptTooLongError
from genlab.generation.settings import GenerationSettings
from genlab.prompting.chat import count_tokens
from genlab.serving.backend import (
    ChoiceResult,
    FinishReason,
    GenerationResult,
    Message,
    QueueHandle,
)
from genlab.serving.backends import import_library
from genlab.serving.backends.ctranslate2_model import ct2_model
from genlab.serving.tool_prompt import render_chat

_STOP_WORKER = object()


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class _Request:
    prompt_ids: list[int]
    settings: GenerationSettings
    handle: QueueHandle
    rows: list[_Row] = field(default_factory=list)

    @property
    def batch_key(self) -> tuple[Any, ...]:
        """Requests with the same key share a batch (``generate_batch`` takes one sampling setting)."""
        s = self.settings
        sampling = (0.0, 1, 1.0) if s.temperature == 0 else (s.temperature, s.top_k, s.top_p)
        return (*sampling, s.repetition_penalty)


class _Row:
    """One choice of one request as it decodes: its tokens, its text, what has been streamed."""

    def __init__(self, request: _Request, choice: int, decode: Any) -> None:
        self.request, self.choice, self.decode = request, choice, decode
        self.ids: list[int] = []
        self.text, self.sent, self.finish = "", 0, "length"
        self.done = False

    def on_token(self, token_id: int, end_ids: frozenset[int]) -> bool:
        """Take one generated token; True when the row is finished (CTranslate2 then drops it)."""
        settings, handle = self.request.settings, self.request.handle
        if self.done:
            return True
        if handle.cancelled.is_set() or token_id in end_ids:
            return self._end("stop")
        self.ids.append(token_id)
        text = self.decode(self.ids)
        stops = settings.stop
        hits = [text.find(stop) for stop in stops if stop in text]
        if hits:
            self.text = text[: min(hits)]
            return self._end("stop")
        self.text = text
        # Hold back a half character (U+FFFD at the end) and a tail that may start a stop sequence.
        ready = len(text) - (1 if text.endswith("\ufffd") else 0)
        ready = min(ready, len(text) - max((_overlap(text, stop) for stop in stops), default=0))
        if ready > self.sent:
            handle.put(self.choice, text[self.sent : ready])
            self.sent = ready
        if len(self.ids) >= settings.max_new_tokens:
            return self._end("length")
        return False

    def _end(self, finish: FinishReason) -> bool:
        self.finish, self.done = finish, True
        return True

    def result(self) -> ChoiceResult:
        if len(self.text) > self.sent:
            self.request.handle.put(self.choice, self.text[self.sent :])
            self.sent = len(self.text)
        return ChoiceResult(text=self.text, completion_tokens=len(self.ids), finish_reason=self.finish,  # type: ignore[arg-type]
                            token_ids=tuple(self.ids))  # fmt: skip


class CTranslate2Backend:
    """Serve one model with CTranslate2: ``CTranslate2Backend("smollm2-135m-instruct")`` (converted once)."""

    name = "ctranslate2"
    features: frozenset[str] = frozenset()  # no optional request field (see the module docstring)

    def __init__(
        self,
        model: str,
        *,
        adapters: Mapping[str, str] | None = None,
        context_window: int | None = None,
        threads: int | None = None,
        max_batch: int = 8,
        quantization: str = "int8",
        model_id: str | None = None,
    ) -> None:
        if adapters:
            raise InvalidValueError(
                "the ctranslate2 backend serves no adapters (--adapter): merge the adapter into its model "
                "(genlab adapters merge) and serve the merged folder, or serve adapters with --backend genlab."
            )
        if max_batch < 1:
            raise InvalidValueError(f"max_batch={max_batch} is not allowed: it must be at least 1.")
        self._ct2 = import_library("ctranslate2")
        self.converted = ct2_model(model, quantization)
        self.model_path = self.converted.folder  # the weights' folder, hashed for lineage
        self.model_id = model_id or model
        self.threads = threads if threads is not None else available_cores()
        if self.threads < 1:
            raise InvalidValueError(f"threads={self.threads} is not allowed: it must be at least 1.")
        self.max_batch = max_batch
        trained = self.converted.context_window
        self._context_window = context_window or trained
        if not 1 <= self._context_window <= trained:
            raise InvalidValueError(f"context_window={self._context_window} is not allowed: the model reads at most {trained} tokens.")
        from transformers import AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(str(self.model_path))
        self._tokenizer_lock = threading.Lock()
        eos = self._tokenizer.eos_token_id
        self._end_ids = frozenset([eos] if eos is not None else [])
        self._generator: Any = None
        self._lock = threading.Lock()  # held while the weights load, unload or generate
        self._waiting: list[_Request] = []
        self._wake = threading.Condition()
        self._worker: threading.Thread | None = None
        self._batches = self._rows_batched = 0

    # --- Backend protocol ------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._generator is not None

    @property
    def context_window(self) -> int:
        return self._context_window

    def models(self) -> list[str]:
        return [self.model_id]

    def count_tokens(self, text: str, *, formatted: bool = False) -> int:
        with self._tokenizer_lock:
            return count_tokens(self._tokenizer, text, chat_formatted=formatted)

    def format_chat(self, messages: list[Message]) -> str:
        with self._tokenizer_lock:
            return render_chat(self._tokenizer, messages)

    def submit(
        self, model_id: str, prompt: str, settings: GenerationSettings, *, formatted: bool = False, group: str | None = None
    ) -> QueueHandle:
        if model_id != self.model_id:
            raise ModelNotFoundError(f"model {model_id!r} is not served here: this server answers to {self.model_id!r}.")
        with self._tokenizer_lock:
            ids = list(self._tokenizer(prompt, add_special_tokens=not formatted)["input_ids"])
        if not ids:
            raise InvalidValueError("the prompt is not allowed: it is empty (it has no tokens).")
        if settings.seed is not None and settings.temperature > 0:
            raise InvalidValueError(
                "seed is not supported by the ctranslate2 backend when sampling (temperature above 0): its "
                "random generator cannot be seeded per request; leave seed out, or use --backend genlab."
            )
        if len(ids) + settings.max_new_tokens > self._context_window:
            raise PromptTooLongError(
                f"the prompt has {len(ids)} tokens and max_new_tokens is {settings.max_new_tokens}: "
                f"{len(ids)} + {settings.max_new_tokens} exceeds the model's context window of {self._context_window} tokens."
            )
        handle = QueueHandle()
        if settings.max_new_tokens == 0:
            handle.finish(GenerationResult(len(ids), [ChoiceResult("", 0, "length")] * settings.num_return_sequences))
            return handle
        self._start_worker()
        with self._wake:
            self._waiting.append(_Request(ids, settings, handle))
            self._wake.notify()
        return handle

    def load(self) -> None:
        with self._lock:
            self._load_locked()

    def unload(self) -> None:
        with self._lock:  # the batch in flight finishes first
            self._generator = None

    def close(self) -> None:
        """Stop the worker thread and free the model (the backend cannot be used afterwards)."""
        if self._worker is not None:
            with self._wake:
                self._waiting.append(_STOP_WORKER)  # type: ignore[arg-type]
                self._wake.notify()
            self._worker.join()
            self._worker = None
        self.unload()

    # --- more than the protocol ------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a batch (those decoding are not counted)."""
        return len(self._waiting)

    def decode_stats(self) -> tuple[int, int]:
        """(batches, rows summed over them): their ratio is the mean batch size."""
        return self._batches, self._rows_batched

    # --- the worker ------------------------------------------------------------------------------

    def _load_locked(self) -> Any:
        if self._generator is None:
            self._generator = self._ct2.Generator(
                str(self.model_path), device="cpu", compute_type=self.converted.quantization,
                intra_threads=self.threads, inter_threads=1,
            )  # fmt: skip
        return self._generator

    def _start_worker(self) -> None:
        with self._wake:
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="genlab-ctranslate2", daemon=True)
                self._worker.start()

    def _next_batch(self) -> list[_Request] | None:
        """The oldest waiting request and the waiting ones that sample like it, up to ``max_batch`` rows."""
        with self._wake:
            self._wake.wait_for(lambda: bool(self._waiting))
            first = self._waiting[0]
            if first is _STOP_WORKER:
                return None
            batch, rows = [], 0
            for request in list(self._waiting):
                if request is _STOP_WORKER or request.batch_key != first.batch_key:
                    continue
                n = request.settings.num_return_sequences
                if batch and rows + n > self.max_batch:
                    break
                batch.append(request)
                rows += n
                self._waiting.remove(request)
            return batch

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                with self._lock:
                    self._generate(self._load_locked(), batch)
            except Exception as error:  # noqa: BLE001 - the batch fails, the worker goes on
                for request in batch:
                    request.handle.fail(error)
                continue
            for request in batch:
                rows = [row.result() for row in request.rows]
                request.handle.finish(GenerationResult(prompt_tokens=len(request.prompt_ids), choices=rows))

    def _generate(self, generator: Any, batch: list[_Request]) -> None:
        rows = [_Row(r, c, self._decode) for r in batch for c in range(r.settings.num_return_sequences)]
        for row in rows:
            row.request.rows.append(row)
        settings = batch[0].settings
        with self._tokenizer_lock:
            start = [self._tokenizer.convert_ids_to_tokens(row.request.prompt_ids) for row in rows]
        greedy = settings.temperature == 0
        end_ids = self._end_ids
        generator.generate_batch(
            start,
            max_length=max(row.request.settings.max_new_tokens for row in rows),
            include_prompt_in_result=False,
            end_token=sorted(end_ids) or None,
            repetition_penalty=settings.repetition_penalty,
            sampling_topk=1 if greedy else settings.top_k,  # CTranslate2's 0: the whole vocabulary
            sampling_topp=1.0 if greedy else settings.top_p,
            sampling_temperature=1.0 if greedy else settings.temperature,
            callback=lambda step: rows[step.batch_id].on_token(step.token_id, end_ids),
        )
        self._batches += 1
        self._rows_batched += len(rows)

    def _decode(self, ids: list[int]) -> str:
        with self._tokenizer_lock:
            return self._tokenizer.decode(ids, skip_special_tokens=True)


def _overlap(text: str, stop: str) -> int:
    """Characters at the end of ``text`` that are a proper prefix of ``stop``."""
    for length in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:length]):
            return length
    return 0
