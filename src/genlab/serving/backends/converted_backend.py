"""What the backends of converted, adapter-free models share: CTranslate2 and ONNX Runtime GenAI.

Each serves one model converted once into its runtime's format, tokenises and formats chats with the
model's HF tokenizer, and decodes in one worker thread that owns the runtime's weights. This module
holds what does not depend on the runtime:

- :class:`ConvertedModelBackend`: the checks of the constructor (no adapters, ``max_batch``,
  ``threads``, the context window), the Backend protocol's methods that only read the tokenizer, the
  checks every request passes before it waits (its model, an empty prompt, a seed with sampling, the
  context window), the queue of waiting requests, and loading, unloading and stopping the worker;
- :class:`StreamedRow`: one choice of one request as it decodes -- its tokens, its text (stop
  sequences cut, a half character or a possible stop held back), what has been streamed, and why it
  ended.

Written here rather than taken from a library: both runtimes hand out tokens one at a time and leave
the stream to the caller.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from genlab.errors import InvalidValueError, ModelNotFoundError, PromptTooLongError
from genlab.generation.settings import GenerationSettings
from genlab.prompting.chat import count_tokens
from genlab.serving.backend import ChoiceResult, FinishReason, GenerationResult, Message, QueueHandle
from genlab.serving.tool_prompt import render_chat

STOP_WORKER = object()  # put on the queue of waiting requests: the worker returns


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class ConvertedModelBackend:
    """The runtime-independent half of a converted-model backend (see the module docstring).

    A subclass sets ``name`` and ``seed_refusal`` (why a seed with sampling is refused), converts the
    model and calls :meth:`_setup` with the converted folder, and implements ``_load_locked`` (the
    runtime's weights, loaded once into ``self._weights``) and ``_work`` (the worker's loop).
    """

    name = ""
    seed_refusal = ""  # "... when sampling (temperature above 0): <why>; leave seed out, or use --backend genlab."
    features: frozenset[str] = frozenset()  # no optional request field

    def __init__(self, model: str, *, adapters: Mapping[str, str] | None, max_batch: int, model_id: str | None) -> None:
        if adapters:
            raise InvalidValueError(
                f"the {self.name} backend serves no adapters (--adapter): merge the adapter into its model "
                "(genlab adapters merge) and serve the merged folder, or serve adapters with --backend genlab."
            )
        if max_batch < 1:
            raise InvalidValueError(f"max_batch={max_batch} is not allowed: it must be at least 1.")
        self.max_batch = max_batch
        self.model_id = model_id or model
        self._weights: Any = None  # the runtime's loaded model
        self._lock = threading.Lock()  # held while the weights load, unload or decode
        self._waiting: list[Any] = []  # requests not yet decoding, oldest first (and STOP_WORKER)
        self._wake = threading.Condition()
        self._worker: threading.Thread | None = None

    def _setup(self, folder: Any, trained_window: int, *, context_window: int | None, threads: int | None) -> None:
        """Check the thread count and context window and load the HF tokenizer of the converted ``folder``."""
        from transformers import AutoTokenizer

        self.model_path = folder  # the weights' folder, hashed for lineage
        self.threads = threads if threads is not None else available_cores()
        if self.threads < 1:
            raise InvalidValueError(f"threads={self.threads} is not allowed: it must be at least 1.")
        self._context_window = context_window or trained_window
        if not 1 <= self._context_window <= trained_window:
            raise InvalidValueError(
                f"context_window={self._context_window} is not allowed: the model reads at most {trained_window} tokens."
            )
        self._tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self._tokenizer_lock = threading.Lock()
        eos = self._tokenizer.eos_token_id
        self._end_ids = frozenset([eos] if eos is not None else [])

    # --- Backend protocol ------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._weights is not None

    @property
    def context_window(self) -> int:
        return self._context_window

    def models(self) -> list[str]:
        return [self.model_id]

    def count_tokens(self, text: str, *, formatted: bool = False) -> int:
        with self._tokenizer_lock:
            return count_tokens(self._tokenizer, text, chat_formatted=formatted)

    def format_chat(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> str:
        with self._tokenizer_lock:
            return render_chat(self._tokenizer, messages, tools)

    def load(self) -> None:
        with self._lock:
            self._load_locked()

    def unload(self) -> None:
        with self._lock:  # the decoding in flight finishes its step first
            self._weights = None

    def close(self) -> None:
        """Stop the worker thread and free the model (the backend cannot be used afterwards)."""
        if self._worker is not None:
            with self._wake:
                self._waiting.append(STOP_WORKER)
                self._wake.notify_all()
            self._worker.join()
            self._worker = None
        self.unload()

    # --- more than the protocol ------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        """Requests waiting to decode (those decoding are not counted)."""
        return len(self._waiting)

    # --- for subclasses ----------------------------------------------------------------------------

    def _prompt_ids(self, model_id: str, prompt: str, settings: GenerationSettings, formatted: bool) -> list[int]:
        """The prompt's token ids, after the checks every request passes before it waits."""
        if model_id != self.model_id:
            raise ModelNotFoundError(f"model {model_id!r} is not served here: this server answers to {self.model_id!r}.")
        with self._tokenizer_lock:
            ids = list(self._tokenizer(prompt, add_special_tokens=not formatted)["input_ids"])
        if not ids:
            raise InvalidValueError("the prompt is not allowed: it is empty (it has no tokens).")
        if settings.seed is not None and settings.temperature > 0:
            raise InvalidValueError(f"seed is not supported by the {self.name} backend when sampling (temperature above 0): {self.seed_refusal}")
        if len(ids) + settings.max_new_tokens > self._context_window:
            raise PromptTooLongError(
                f"the prompt has {len(ids)} tokens and max_new_tokens is {settings.max_new_tokens}: "
                f"{len(ids)} + {settings.max_new_tokens} exceeds the model's context window of {self._context_window} tokens."
            )
        return ids

    def _enqueue(self, request: Any, ids: list[int], settings: GenerationSettings) -> QueueHandle:
        """Queue ``request`` (which holds ``request.handle``) for the worker; a request for no tokens ends at once."""
        handle: QueueHandle = request.handle
        if settings.max_new_tokens == 0:
            handle.finish(GenerationResult(len(ids), [ChoiceResult("", 0, "length")] * settings.num_return_sequences))
            return handle
        with self._wake:
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name=f"genlab-{self.name}", daemon=True)
                self._worker.start()
            self._waiting.append(request)
            self._wake.notify_all()  # all: a backend's own threads may wait on it beside the worker
        return handle

    def _decode(self, ids: list[int]) -> str:
        with self._tokenizer_lock:
            return self._tokenizer.decode(ids, skip_special_tokens=True)

    def _load_locked(self) -> Any:
        raise NotImplementedError

    def _work(self) -> None:
        raise NotImplementedError


class StreamedRow:
    """One choice of one request as it decodes: its tokens, its text, what has been streamed."""

    def __init__(self, request: Any, choice: int, decode: Any) -> None:
        self.request, self.choice, self.decode = request, choice, decode  # request: .settings and .handle
        self.ids: list[int] = []
        self.text, self.sent, self.finish = "", 0, "length"
        self.done = False

    def on_token(self, token_id: int, end_ids: frozenset[int]) -> bool:
        """Take one generated token; True when the row is finished (the runtime then drops it)."""
        settings, handle = self.request.settings, self.request.handle
        if self.done:
            return True
        if handle.cancelled.is_set() or token_id in end_ids:
            return self.end("stop")
        self.ids.append(token_id)
        text = self.decode(self.ids)
        stops = settings.stop
        hits = [text.find(stop) for stop in stops if stop in text]
        if hits:
            self.text = text[: min(hits)]
            return self.end("stop")
        self.text = text
        # Hold back a half character (U+FFFD at the end) and a tail that may start a stop sequence.
        ready = len(text) - (1 if text.endswith("\ufffd") else 0)
        ready = min(ready, len(text) - max((_overlap(text, stop) for stop in stops), default=0))
        if ready > self.sent:
            handle.put(self.choice, text[self.sent : ready])
            self.sent = ready
        if len(self.ids) >= settings.max_new_tokens:
            return self.end("length")
        return False

    def end(self, finish: FinishReason) -> bool:
        self.finish, self.done = finish, True
        return True

    def result(self) -> ChoiceResult:
        if len(self.text) > self.sent:
            self.request.handle.put(self.choice, self.text[self.sent :])
            self.sent = len(self.text)
        return ChoiceResult(text=self.text, completion_tokens=len(self.ids), finish_reason=self.finish,  # type: ignore[arg-type]
                            token_ids=tuple(self.ids))  # fmt: skip


def _overlap(text: str, stop: str) -> int:
    """Characters at the end of ``text`` that are a proper prefix of ``stop``."""
    for length in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:length]):
            return length
    return 0
