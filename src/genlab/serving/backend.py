"""The interface between the HTTP server and whatever generates text: genlab's engine, llama.cpp, vLLM.

The server knows nothing else about a backend. A backend serves one base model and, optionally,
adapters on it; each is a *model id* (``models()``): the base's name (e.g. ``smollm2-135m-instruct``)
and one id per adapter (the ``NAME`` of ``--adapter NAME=PATH``). ``submit`` starts one request and
returns at once with a :class:`GenerationHandle`; iterating the handle yields :class:`TextDelta`s as
tokens arrive, and ``handle.result()`` waits for the :class:`GenerationResult`.

Contract (what the server relies on):

- ``count_tokens`` and ``format_chat`` work whether or not the weights are loaded (keep the tokenizer:
  it is small), so requests are validated without a cold start.
- ``submit`` may be called from any thread, concurrently; it loads the weights first if they were
  unloaded (a cold start). It raises :class:`genlab.errors.ModelNotFoundError` for an id not in
  ``models()`` and :class:`genlab.errors.PromptTooLongError` when prompt + max tokens exceed the window.
- ``settings.num_return_sequences`` choices are generated; deltas carry their choice index.
- ``group`` names the client request a prompt belongs to (a completions request with several
  prompts submits each with the same group). A backend that batches requests itself shares decoding
  fairly between groups, not between prompts (genlab's scheduler does); one that answers a request
  at a time in arrival order (llama.cpp) or schedules by its own rules (vLLM) says so in its docstring.
- ``settings.seed`` makes sampling reproducible for that request whatever else runs beside it
  (genlab's engine guarantees this; other backends say in their docstring if they cannot).
- ``unload`` frees the weights (scale to zero); requests in flight finish first or fail cleanly.

Optional capabilities (a backend without them makes the server refuse the request fields they serve,
with a 400 naming the field): ``features``, the request fields it honours beyond the basics
(:data:`FEATURES`), and for ``"token_prompts"``, :class:`TokenBackend`'s methods (token-id prompts,
``/tokenize``, ``/detokenize``, the strings and bytes of tokens in log-probabilities).

:class:`QueueHandle` is a ready thread-safe handle a backend fills from its worker thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from genlab.generation.logprobs import TokenLogprob
from genlab.generation.settings import GenerationSettings

FinishReason = Literal["stop", "length"]
Message = dict[str, Any]  # {"role": "system"|"user"|"assistant", "content": str}
# Request fields a backend may honour beyond the basics, named as in OpenAI's API ("token_prompts": ids as prompts)
FEATURES = frozenset({"logprobs", "echo", "logit_bias", "frequency_penalty", "presence_penalty", "token_prompts"})


@dataclass(frozen=True)
class TextDelta:
    """New text of one choice, in generation order."""

    choice: int
    text: str
    logprobs: tuple[TokenLogprob, ...] = ()  # of the tokens decoded by the time this text was sent (when asked)


@dataclass(frozen=True)
class ChoiceResult:
    text: str
    completion_tokens: int
    finish_reason: FinishReason  # "stop": end of sequence or a stop sequence; "length": max tokens reached
    token_ids: tuple[int, ...] = ()  # the generated tokens, when the backend tells them
    logprobs: tuple[TokenLogprob, ...] | None = None  # per picked token (end-of-sequence too), when asked


@dataclass(frozen=True)
class GenerationResult:
    prompt_tokens: int
    choices: list[ChoiceResult]
    prompt_ids: tuple[int, ...] = ()  # the prompt's tokens, when the backend tells them
    prompt_logprobs: tuple[TokenLogprob | None, ...] | None = None  # per prompt token (the first None), when asked

    @property
    def text(self) -> str:
        return self.choices[0].text

    @property
    def completion_tokens(self) -> int:
        return sum(choice.completion_tokens for choice in self.choices)

    @property
    def finish_reason(self) -> FinishReason:
        return self.choices[0].finish_reason


@runtime_checkable
class GenerationHandle(Protocol):
    def __iter__(self) -> Iterator[TextDelta]:
        """Deltas as they come; ends when generation ends (raises the backend's error if it failed)."""
        ...

    def result(self, timeout: float | None = None) -> GenerationResult:
        """Wait for the end; raises the error generation failed with, or TimeoutError."""
        ...

    def cancel(self) -> None:
        """Stop generating (the client went away); the result then ends with what was generated."""
        ...


@runtime_checkable
class Backend(Protocol):
    name: str  # "genlab", "llama.cpp", "vllm"

    @property
    def loaded(self) -> bool:
        """True while the weights are in memory."""
        ...

    @property
    def context_window(self) -> int:
        """Tokens the model reads at most: prompt + generated tokens."""
        ...

    def models(self) -> list[str]:
        """Model ids this backend answers to: the base first, then the adapters."""
        ...

    def count_tokens(self, text: str, *, formatted: bool = False) -> int:
        """Tokens ``text`` takes as a prompt (``formatted``: it is ``format_chat``'s output)."""
        ...

    def format_chat(self, messages: list[Message]) -> str:
        """The conversation in the model's chat template, ending where the assistant's answer starts."""
        ...

    def submit(
        self, model_id: str, prompt: str, settings: GenerationSettings, *, formatted: bool = False, group: str | None = None
    ) -> GenerationHandle:
        """Start generating for ``prompt`` with the model ``model_id``; returns at once."""
        ...

    def load(self) -> None:
        """Load the weights if they are not in memory (idempotent)."""
        ...

    def unload(self) -> None:
        """Free the weights; the next ``submit`` loads them again."""
        ...


@runtime_checkable
class TokenBackend(Protocol):
    """What a backend with the ``"token_prompts"`` feature offers besides :class:`Backend`."""

    @property
    def vocab_size(self) -> int:
        """Token ids run from 0 to ``vocab_size - 1``."""
        ...

    def tokenize(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        ...

    def detokenize(self, ids: list[int], *, skip_special_tokens: bool = True) -> str:
        ...

    def token_pieces(self, ids: list[int]) -> list[tuple[str, bytes]]:
        """Each token's own text and the exact bytes it stands for (for log-probabilities)."""
        ...

    def submit_tokens(
        self, model_id: str, prompt_ids: list[int], settings: GenerationSettings, *, group: str | None = None
    ) -> GenerationHandle:
        """As :meth:`Backend.submit`, with the prompt given as token ids."""
        ...


_END = object()


@dataclass
class QueueHandle:
    """A :class:`GenerationHandle` filled by a worker thread: ``put``, then ``finish`` or ``fail``."""

    _deltas: queue.Queue = field(default_factory=queue.Queue)
    _done: threading.Event = field(default_factory=threading.Event)
    _result: GenerationResult | None = None
    _error: BaseException | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)

    # --- worker side -----------------------------------------------------------------------------

    def put(self, choice: int, text: str, logprobs: tuple[TokenLogprob, ...] = ()) -> None:
        if text or logprobs:
            self._deltas.put(TextDelta(choice, text, logprobs))

    def finish(self, result: GenerationResult) -> None:
        self._result = result
        self._done.set()
        self._deltas.put(_END)

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._done.set()
        self._deltas.put(_END)

    # --- client side -----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[TextDelta]:
        while True:
            item = self._deltas.get()
            if item is _END:
                if self._error is not None:
                    raise self._error
                return
            yield item

    def result(self, timeout: float | None = None) -> GenerationResult:
        if not self._done.wait(timeout):
            raise TimeoutError("generation did not finish in time")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def cancel(self) -> None:
        self.cancelled.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()
