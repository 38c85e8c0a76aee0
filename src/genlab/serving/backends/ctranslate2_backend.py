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

Written here rather than taken from a library: the batching of waiting requests around
``generate_batch``; the per-row stream (incremental text, stop sequences, counts) and the checks every
request passes are :mod:`~genlab.serving.backends.converted_backend`'s, shared with ONNX Runtime
GenAI; everything that touches the model is CTranslate2's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from genlab.generation.settings import GenerationSettings
from genlab.serving.backend import GenerationResult, QueueHandle
from genlab.serving.backends import import_library
from genlab.serving.backends.converted_backend import STOP_WORKER, ConvertedModelBackend, StreamedRow
from genlab.serving.backends.ctranslate2_model import ct2_model


@dataclass
class _Request:
    prompt_ids: list[int]
    settings: GenerationSettings
    handle: QueueHandle
    rows: list[StreamedRow] = field(default_factory=list)

    @property
    def batch_key(self) -> tuple[Any, ...]:
        """Requests with the same key share a batch (``generate_batch`` takes one sampling setting)."""
        s = self.settings
        sampling = (0.0, 1, 1.0) if s.temperature == 0 else (s.temperature, s.top_k, s.top_p)
        return (*sampling, s.repetition_penalty)


class CTranslate2Backend(ConvertedModelBackend):
    """Serve one model with CTranslate2: ``CTranslate2Backend("smollm2-135m-instruct")`` (converted once)."""

    name = "ctranslate2"
    seed_refusal = "its random generator cannot be seeded per request; leave seed out, or use --backend genlab."

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
        super().__init__(model, adapters=adapters, max_batch=max_batch, model_id=model_id)
        self._ct2 = import_library("ctranslate2")
        self.converted = ct2_model(model, quantization)
        self._setup(self.converted.folder, self.converted.context_window, context_window=context_window, threads=threads)
        self._batches = self._rows_batched = 0

    def submit(
        self, model_id: str, prompt: str, settings: GenerationSettings, *, formatted: bool = False, group: str | None = None
    ) -> QueueHandle:
        ids = self._prompt_ids(model_id, prompt, settings, formatted)
        return self._enqueue(_Request(ids, settings, QueueHandle()), ids, settings)

    def decode_stats(self) -> tuple[int, int]:
        """(batches, rows summed over them): their ratio is the mean batch size."""
        return self._batches, self._rows_batched

    # --- the worker ------------------------------------------------------------------------------

    def _load_locked(self) -> Any:
        if self._weights is None:
            self._weights = self._ct2.Generator(
                str(self.model_path), device="cpu", compute_type=self.converted.quantization,
                intra_threads=self.threads, inter_threads=1,
            )  # fmt: skip
        return self._weights

    def _next_batch(self) -> list[_Request] | None:
        """The oldest waiting request and the waiting ones that sample like it, up to ``max_batch`` rows."""
        with self._wake:
            self._wake.wait_for(lambda: bool(self._waiting))
            first = self._waiting[0]
            if first is STOP_WORKER:
                return None
            batch, rows = [], 0
            for request in list(self._waiting):
                if request is STOP_WORKER or request.batch_key != first.batch_key:
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
        rows = [StreamedRow(r, c, self._decode) for r in batch for c in range(r.settings.num_return_sequences)]
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
