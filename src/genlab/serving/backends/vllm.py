"""The vLLM backend: the same API on NVIDIA GPUs, with vLLM's continuous batching and multi-LoRA.

**Not run here**: vLLM needs a CUDA GPU and is not installed on genlab's 2-core CPU machines, so this
module is written against vLLM's documented API and only its import guard is tested. The API used is
the one vLLM has kept since 0.6 and still exports in the V1 engine (where ``vllm.AsyncLLMEngine`` is
``vllm.v1.engine.async_llm.AsyncLLM``): ``AsyncLLMEngine.from_engine_args(AsyncEngineArgs(...))``,
``engine.generate(TokensPrompt, SamplingParams, request_id, lora_request=LoRARequest(...))`` yielding
cumulative ``RequestOutput``s, ``engine.abort(request_id)`` and ``engine.shutdown()``.

How it fits :class:`genlab.serving.backend.Backend`: vLLM's engine is asyncio, the server's calls are
threads, so one event loop runs in a background thread and ``submit`` hands it a coroutine that turns
vLLM's outputs into the handle's deltas. Prompts are tokenised here with the model's transformers
tokenizer (kept while the weights are unloaded, for ``count_tokens`` and ``format_chat``) and passed as
token ids, so the counted prompt is the prompt vLLM reads. LoRA adapters (``--adapter NAME=PATH``,
peft's format, which genlab's LoRA writes) are served per request with ``LoRARequest``; prompt-tuning
adapters are refused (vLLM has no soft prompts). Seeds are vLLM's per-request seeds: reproducible for a
request whatever else is batched with it. ``submit``'s ``group`` is not passed on: vLLM's scheduler
orders sequences by its own policy (first come, first served by default), not per client request.

Install on a GPU machine: ``pip install vllm``, then ``genlab serve --backend vllm --model M``.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genlab.errors import InvalidValueError, ModelNotFoundError, PromptTooLongError
from genlab.generation.settings import GenerationSettings
from genlab.serving.backend import ChoiceResult, GenerationResult, Message, QueueHandle
from genlab.serving.backends import import_library


def resolve_vllm_model(model: str) -> str:
    """What vLLM loads for ``model``: a pack's converted folder, a local model folder, or a hub id."""
    from genlab.models.load import resolve_model_source
    from genlab.models.packs import PACKS, ensure_converted

    source = resolve_model_source(model)
    if source.kind == "pack":
        return str(ensure_converted(PACKS[source.location]))
    if source.kind == "gguf":
        raise InvalidValueError(f"the vLLM backend serves model folders and hub ids, not GGUF files ({model}): "
                                "serve GGUF with --backend llama.cpp.")
    return source.location


def lora_requests(adapters: Mapping[str, str], lora_request_class: Any) -> dict[str, Any]:
    """One vLLM ``LoRARequest`` per adapter name (ids from 1: vLLM reserves 0 for 'no adapter')."""
    from genlab.models.adapters import read_adapter_info

    requests = {}
    for index, (name, path) in enumerate(adapters.items(), start=1):
        info = read_adapter_info(path)
        if info.peft_type != "LORA":
            raise InvalidValueError(
                f"adapter {name!r} is a {info.peft_type} adapter: the vLLM backend serves LoRA adapters only "
                "(serve the others with --backend genlab)."
            )
        requests[name] = lora_request_class(name, index, str(info.path))
    return requests


class VllmBackend:
    """Serve a model and its LoRA adapters with vLLM: ``VllmBackend("owner/model", adapters={...})``."""

    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        adapters: Mapping[str, str] | None = None,
        context_window: int | None = None,
        gpu_memory_utilization: float = 0.9,
        max_lora_rank: int = 64,
        model_id: str | None = None,
    ) -> None:
        self._vllm = import_library("vllm")
        from transformers import AutoTokenizer
        from vllm.lora.request import LoRARequest

        self.model_id = model_id or model
        self.location = resolve_vllm_model(model)
        self.model_path = Path(self.location) if Path(self.location).is_dir() else None  # for lineage
        self.tokenizer = AutoTokenizer.from_pretrained(self.location)
        self._loras = lora_requests(adapters or {}, LoRARequest)
        if self.model_id in self._loras:
            raise InvalidValueError(f"adapter name {self.model_id!r} is the base model's id: choose another name.")
        self._engine_args = self._vllm.AsyncEngineArgs(
            model=self.location,
            max_model_len=context_window,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_lora=bool(self._loras),
            max_loras=max(1, len(self._loras)),
            max_lora_rank=max_lora_rank,
        )
        self._context_window = context_window or _trained_context(self.location, self.tokenizer)
        self._engine: Any = None
        self._in_flight = 0
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="genlab-vllm", daemon=True).start()
        self._engine_lock: asyncio.Lock | None = None  # made on the loop (see _guard)

    # --- Backend protocol ------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    @property
    def context_window(self) -> int:
        return self._context_window

    def models(self) -> list[str]:
        return [self.model_id, *self._loras]

    def count_tokens(self, text: str, *, formatted: bool = False) -> int:
        return len(self._tokenize(text, formatted=formatted))

    def format_chat(self, messages: list[Message]) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise InvalidValueError(f"{self.model_id} has no chat template: use completions, not chat.")
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def submit(
        self, model_id: str, prompt: str, settings: GenerationSettings, *, formatted: bool = False, group: str | None = None
    ) -> QueueHandle:
        if model_id not in self.models():
            raise ModelNotFoundError(
                f"model {model_id!r} is not served here: this server answers to {', '.join(self.models())}."
            )
        prompt_ids = self._tokenize(prompt, formatted=formatted)
        if len(prompt_ids) + settings.max_new_tokens > self._context_window:
            raise PromptTooLongError(
                f"the prompt has {len(prompt_ids)} tokens and max_new_tokens is {settings.max_new_tokens}: "
                f"{len(prompt_ids)} + {settings.max_new_tokens} exceeds the model's context window of "
                f"{self._context_window} tokens."
            )
        handle = QueueHandle()
        asyncio.run_coroutine_threadsafe(
            self._stream(prompt_ids, settings, self._loras.get(model_id), handle), self._loop
        )
        return handle

    def load(self) -> None:
        asyncio.run_coroutine_threadsafe(self._ensure_engine(), self._loop).result()

    def unload(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown_engine(), self._loop).result()

    # --- on the event loop -----------------------------------------------------------------------

    def _guard(self) -> asyncio.Lock:
        if self._engine_lock is None:
            self._engine_lock = asyncio.Lock()
        return self._engine_lock

    async def _ensure_engine(self) -> Any:
        async with self._guard():
            if self._engine is None:
                self._engine = self._vllm.AsyncLLMEngine.from_engine_args(self._engine_args)
            return self._engine

    async def _shutdown_engine(self) -> None:
        async with self._guard():
            while self._in_flight:  # requests in flight finish first
                await asyncio.sleep(0.05)
            if self._engine is not None:
                shutdown = getattr(self._engine, "shutdown", None)
                if shutdown is not None:
                    shutdown()
                self._engine = None

    async def _stream(self, prompt_ids: list[int], settings: GenerationSettings, lora: Any, handle: QueueHandle) -> None:
        self._in_flight += 1
        request_id = f"genlab-{uuid.uuid4().hex}"
        try:
            engine = await self._ensure_engine()
            sent = [0] * settings.num_return_sequences
            final = None
            prompt = self._vllm.TokensPrompt(prompt_token_ids=prompt_ids)
            async for output in engine.generate(prompt, self._sampling_params(settings), request_id, lora_request=lora):
                for completion in output.outputs:
                    handle.put(completion.index, completion.text[sent[completion.index] :])
                    sent[completion.index] = max(sent[completion.index], len(completion.text))
                final = output
                if handle.cancelled.is_set():
                    await engine.abort(request_id)
                    break
            choices = sorted(final.outputs, key=lambda c: c.index) if final is not None else []
            handle.finish(
                GenerationResult(
                    prompt_tokens=len(prompt_ids),
                    choices=[
                        ChoiceResult(c.text, len(c.token_ids), "length" if c.finish_reason == "length" else "stop")
                        for c in choices
                    ],
                )
            )
        except Exception as error:  # noqa: BLE001 - the request fails, the engine goes on
            handle.fail(error)
        finally:
            self._in_flight -= 1

    # --- helpers ---------------------------------------------------------------------------------

    def _sampling_params(self, settings: GenerationSettings) -> Any:
        return self._vllm.SamplingParams(
            n=settings.num_return_sequences,
            max_tokens=settings.max_new_tokens,
            temperature=settings.temperature,  # 0: greedy
            top_k=settings.top_k if settings.top_k > 0 else -1,  # -1: off (0 also means off from vLLM 0.8)
            top_p=settings.top_p,
            repetition_penalty=settings.repetition_penalty,  # transformers' rule: prompt and output tokens
            stop=list(settings.stop) or None,
            seed=settings.seed,
        )

    def _tokenize(self, text: str, *, formatted: bool) -> list[int]:
        # A chat template already holds its special tokens, as in genlab's engine.
        return list(self.tokenizer(text, add_special_tokens=not formatted)["input_ids"])


def _trained_context(location: str, tokenizer: Any) -> int:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(location)
    for attribute in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, attribute, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 1_000_000 else 2048
