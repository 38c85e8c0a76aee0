"""The llama.cpp backend: GGUF models on CPUs through llama-cpp-python (optional, ``make setup-llamacpp``).

llama.cpp runs the quantised weights as they are (the default model's Q4_1 GGUF, about 4.5 bits per
weight) with its own CPU kernels, so a single stream decodes several times faster than transformers
in fp32 (figures below). What it does not do here:

- **No batching across requests**: llama-cpp-python's ``Llama`` holds one sequence. One worker thread
  owns the model and takes requests from a FIFO queue, one at a time; concurrent requests wait.
- **No fairness between requests** (``submit``'s ``group``): requests run whole, in arrival order.
- **No adapters**: ``--adapter`` is refused; serve adapters with ``--backend genlab``, or merge the
  adapter (``genlab adapters merge``) and convert the result to GGUF with llama.cpp's own tools.

**Threads**: half the cores by default (``threads=``; llama-cpp-python's own default). llama.cpp's
threads meet at a barrier after every operation of the graph, so one thread that the OS deschedules
stalls the others: on genlab's 2-core machine, shared with other jobs (load average 5-9), 2 threads
decoded 4.3 tokens/s and 1 thread 33.1. Give it every core only on a machine with nothing else to do
(``OMP_WAIT_POLICY=passive`` softens the fall: 2.0 -> 16.1 tokens/s in one such measurement).

**Measured** (default model, greedy, 128 new tokens, median of 3 runs,
:func:`genlab.serving.backends.speed.measure_single_stream`; the shared machine above, so low):
llama.cpp on the Q4_1 GGUF, 1 thread: 33.1 tokens/s (38.1 while decoding, first token 0.53 s);
genlab's engine in fp32, 1 thread: 7.9 tokens/s, 4.2x slower. The issue that asked for this backend
measured 115 against 15 tokens/s with both cores of an idle machine.

Decoding is llama-cpp-python's ``Llama.generate`` (llama.cpp's sampler chain and KV cache); each
request reads its whole prompt afresh, since reusing the previous request's cached prefix changes
greedy answers (see ``_decode_one``). The loop around it — incremental UTF-8 text, stop sequences,
counting the tokens — is written here rather than taken from ``create_completion(stream=True)``
because that stream does not say how many tokens each piece of text holds, and usage must count them
exactly; a test checks the loop against ``create_completion`` token for token. The chat template is
the GGUF's own (``tokenizer.chat_template``), rendered by llama-cpp-python's ``Jinja2ChatFormatter``;
the vocabulary stays open while the weights are unloaded, so tokens are counted without a cold start.

Settings map onto llama.cpp's samplers: temperature 0 is greedy; top-k 0 and top-p 1 are off; min-p
and typical-p stay off (genlab has no such settings). Two differences from genlab's engine: llama.cpp
applies top-p before the temperature (transformers after), and its repetition penalty counts the
generated tokens only, not the prompt's. A seed is reproducible (requests run one at a time, and
choice ``i`` of a request samples with ``seed + i``).
"""

from __future__ import annotations

import codecs
import os
import queue
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genlab.errors import InvalidValueError, ModelNotFoundError, PromptTooLongError
from genlab.generation.settings import GenerationSettings
from genlab.serving.backend import ChoiceResult, FinishReason, GenerationResult, Message, QueueHandle
from genlab.serving.backends import import_library

_STOP_WORKER = object()


def resolve_gguf(model: str) -> Path:
    """The GGUF file behind ``model``: a model pack shipped as GGUF, or a path to a ``.gguf`` file."""
    from genlab.models.gguf import check_gguf_file
    from genlab.models.packs import PACKS

    pack = PACKS.get(model)
    if pack is not None:
        if pack.kind != "generator" or not pack.relative_path.endswith(".gguf"):
            raise InvalidValueError(f"the llama.cpp backend serves GGUF files, and the pack {model!r} is not one.")
        return pack.source_path()
    path = Path(model).expanduser()
    if path.suffix == ".gguf" or path.is_file():
        check_gguf_file(path)  # missing file or not GGUF: one sentence
        return path
    gguf_packs = [name for name, p in PACKS.items() if p.relative_path.endswith(".gguf")]
    raise ModelNotFoundError(
        f"the llama.cpp backend serves GGUF files: {model!r} is neither a .gguf file nor a model pack "
        f"shipped as GGUF ({', '.join(gguf_packs)})."
    )


def default_threads() -> int:
    """Half the cores this process may use (llama-cpp-python's own default), at least one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // 2)


class LlamaCppBackend:
    """Serve one GGUF model with llama.cpp: ``LlamaCppBackend("smollm2-135m-instruct")``."""

    name = "llama.cpp"

    def __init__(
        self,
        model: str,
        *,
        adapters: Mapping[str, str] | None = None,
        context_window: int | None = None,
        threads: int | None = None,
        model_id: str | None = None,
    ) -> None:
        if adapters:
            raise InvalidValueError(
                "the llama.cpp backend serves no adapters (--adapter): serve them with --backend genlab, "
                "or merge the adapter into the model and convert it to GGUF."
            )
        self._llama_cpp = import_library("llama.cpp")
        self.path = resolve_gguf(model)
        self.model_path = self.path  # the weights' file, hashed for lineage
        self.model_id = model_id or model
        self.threads = threads if threads is not None else default_threads()
        if self.threads < 1:
            raise InvalidValueError(f"threads={self.threads} is not allowed: it must be at least 1.")
        # The vocabulary alone (no weights): tokenising and the chat template work while unloaded.
        self._vocab = self._open_vocabulary()
        trained = self._trained_context()
        self._context_window = context_window or trained
        if not 1 <= self._context_window <= trained:
            raise InvalidValueError(
                f"context_window={self._context_window} is not allowed: {self.path.name} was trained "
                f"on at most {trained} tokens."
            )
        self._formatter = self._chat_formatter()
        self._llm: Any = None  # llama_cpp.Llama with the weights, owned by the worker thread
        self._lock = threading.Lock()  # held while the weights load, unload or generate
        self._jobs: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._worker_started = threading.Lock()

    # --- Backend protocol ------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    @property
    def context_window(self) -> int:
        return self._context_window

    def models(self) -> list[str]:
        return [self.model_id]

    def count_tokens(self, text: str, *, formatted: bool = False) -> int:
        return len(self._tokenize(text, formatted=formatted))

    def format_chat(self, messages: list[Message]) -> str:
        if self._formatter is None:
            raise InvalidValueError(
                f"{self.path.name} has no chat template (tokenizer.chat_template): use completions, not chat."
            )
        return self._formatter(messages=messages).prompt

    def submit(
        self, model_id: str, prompt: str, settings: GenerationSettings, *, formatted: bool = False, group: str | None = None
    ) -> QueueHandle:
        if model_id != self.model_id:
            raise ModelNotFoundError(f"model {model_id!r} is not served here: this server answers to {self.model_id!r}.")
        prompt_ids = self._tokenize(prompt, formatted=formatted)
        if len(prompt_ids) + settings.max_new_tokens > self._context_window:
            raise PromptTooLongError(
                f"the prompt has {len(prompt_ids)} tokens and max_new_tokens is {settings.max_new_tokens}: "
                f"{len(prompt_ids)} + {settings.max_new_tokens} exceeds the model's context window of "
                f"{self._context_window} tokens."
            )
        handle = QueueHandle()
        self._start_worker()
        self._jobs.put((prompt_ids, settings, handle))
        return handle

    @property
    def queue_depth(self) -> int:
        """Requests waiting for the model (the one generating is not counted)."""
        return self._jobs.qsize()

    def load(self) -> None:
        with self._lock:
            self._load_locked()

    def unload(self) -> None:
        with self._lock:  # a request in flight finishes first
            if self._llm is not None:
                self._llm.close()
                self._llm = None

    def close(self) -> None:
        """Stop the worker thread and free the model (the backend cannot be used afterwards)."""
        if self._worker is not None:
            self._jobs.put(_STOP_WORKER)
            self._worker.join()
            self._worker = None
        self.unload()
        self._vocab.close()

    # --- the model -------------------------------------------------------------------------------

    def _open_vocabulary(self) -> Any:
        # ``Llama(vocab_only=True)`` fails in llama-cpp-python 0.3.36 ("Failed to create llama_context"),
        # so the vocabulary is opened with the wrapper ``Llama`` itself is built on (about 0.3 s, no weights).
        from llama_cpp._internals import LlamaModel

        params = self._llama_cpp.llama_model_default_params()
        params.vocab_only = True
        return LlamaModel(path_model=str(self.path), params=params, verbose=False)

    def _open_model(self) -> Any:
        return self._llama_cpp.Llama(
            model_path=str(self.path),
            n_ctx=self._context_window,
            n_threads=self.threads,
            n_threads_batch=self.threads,
            # The repetition penalty looks back over every generated token (llama.cpp's default is 64).
            last_n_tokens_size=self._context_window,
            verbose=False,
        )

    def _load_locked(self) -> Any:
        if self._llm is None:
            self._llm = self._open_model()
        return self._llm

    def _trained_context(self) -> int:
        metadata = self._vocab.metadata()
        value = metadata.get(f"{metadata.get('general.architecture', '')}.context_length")
        return int(value) if value else 2048

    def _chat_formatter(self) -> Any:
        template = self._vocab.metadata().get("tokenizer.chat_template")
        if not template:
            return None
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        return Jinja2ChatFormatter(template=template, eos_token=self._token_text("eos"), bos_token=self._token_text("bos"))

    def _token_text(self, which: str) -> str:
        token = self._vocab.token_eos() if which == "eos" else self._vocab.token_bos()
        return "" if token < 0 else self._vocab.token_get_text(token)

    def _tokenize(self, text: str, *, formatted: bool) -> list[int]:
        # A chat template already holds its special tokens; plain text gets the vocabulary's own (BOS when
        # it asks for one), as llama.cpp's create_completion does. Special-token text is parsed either way.
        return self._vocab.tokenize(text.encode("utf-8"), add_bos=not formatted, special=True)

    def _is_end_of_generation(self, llm: Any, token: int) -> bool:
        llama_cpp = self._llama_cpp
        return bool(llama_cpp.llama_vocab_is_eog(llama_cpp.llama_model_get_vocab(llm.model), token))

    # --- the worker ------------------------------------------------------------------------------

    def _start_worker(self) -> None:
        with self._worker_started:
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="genlab-llama.cpp", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP_WORKER:
                return
            prompt_ids, settings, handle = job
            try:
                with self._lock:
                    llm = self._load_locked()
                    result = self._generate(llm, prompt_ids, settings, handle)
            except Exception as error:  # noqa: BLE001 - the request fails, the worker goes on
                handle.fail(error)
            else:
                handle.finish(result)

    def _generate(self, llm: Any, prompt_ids: list[int], settings: GenerationSettings, handle: QueueHandle) -> GenerationResult:
        seed = settings.seed if settings.seed is not None else secrets.randbits(32)
        choices = []
        for choice in range(settings.num_return_sequences):
            llm.set_seed((seed + choice) % 2**32)
            choices.append(self._decode_one(llm, prompt_ids, settings, choice, handle))
        return GenerationResult(prompt_tokens=len(prompt_ids), choices=choices)

    def _decode_one(
        self, llm: Any, prompt_ids: list[int], settings: GenerationSettings, choice: int, handle: QueueHandle
    ) -> ChoiceResult:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = settings.stop
        text, sent, generated, cut = "", 0, 0, False
        finish: FinishReason = "length"
        # Forget the previous request's KV cache: reusing its prefix re-evaluates the last prompt token
        # alone, whose logits differ slightly from a whole-prompt pass, and greedy answers then depend on
        # what ran before. Re-reading the prompt costs milliseconds here; the same request always gets
        # the same answer.
        llm.reset()
        tokens = llm.generate(
            prompt_ids,
            temp=settings.temperature,
            top_k=settings.top_k,
            top_p=settings.top_p,
            min_p=0.0,
            typical_p=1.0,
            repeat_penalty=settings.repetition_penalty,
        )
        for token in tokens:
            if handle.cancelled.is_set() or self._is_end_of_generation(llm, token):
                finish = "stop"
                break
            generated += 1
            text += decoder.decode(llm.detokenize([token]))
            hits = [text.find(stop) for stop in stops if stop in text]
            if hits:
                text, finish, cut = text[: min(hits)], "stop", True
                break
            # Hold back a tail that may be the start of a stop sequence (the decoder holds half characters).
            ready = len(text) - max((_overlap(text, stop) for stop in stops), default=0)
            if ready > sent:
                handle.put(choice, text[sent:ready])
                sent = ready
            if generated >= settings.max_new_tokens:
                break
        tokens.close()
        if not cut:
            text += decoder.decode(b"", final=True)  # a character cut short ends as U+FFFD
        handle.put(choice, text[sent:])
        return ChoiceResult(text=text, completion_tokens=generated, finish_reason=finish)


def _overlap(text: str, stop: str) -> int:
    """Characters at the end of ``text`` that are a proper prefix of ``stop``."""
    for length in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:length]):
            return length
    return 0
