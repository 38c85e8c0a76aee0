"""genlab's own engine as a serving backend: dynamic batching, several adapters on one base.

The base model's id is its name (``smollm2-135m-instruct``); each adapter of ``--adapter NAME=PATH``
is served as the id ``NAME`` (the scheme vLLM uses for LoRA modules). The adapters sit on one copy
of the base weights (:class:`genlab.models.adapters.AdapterSet`), and requests for different ids
share forward passes: every row of a batch names its LoRA adapter through peft's per-row
``adapter_names`` forward argument (``"__base__"`` for the base), and a prompt-tuning adapter's soft
prompt is read by its rows alone.

The tokenizer stays in memory when the weights are unloaded (scale to zero), so requests are
validated and their tokens counted without a cold start.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError, InvalidValueError, ModelNotFoundError
from genlab.generation.engine import GenerationEngine
from genlab.generation.settings import GenerationSettings
from genlab.models.load import LoadedModel
from genlab.serving.backend import GenerationHandle, Message
from genlab.serving.scheduler import Scheduler

BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in adapter_names


@dataclass(frozen=True)
class _Route:
    """How rows for one model id run: the peft adapter name they carry and the soft prompt they read."""

    adapter: str | None
    soft_prompt: Any = None

    @property
    def virtual_tokens(self) -> int:
        return 0 if self.soft_prompt is None else int(self.soft_prompt.shape[0])


class GenlabBackend:
    """Serve ``model`` (a name for :func:`load_model`, or a function returning a LoadedModel) and its adapters.

    ``max_batch``: rows decoded together (1 turns dynamic batching off: one request at a time).
    ``model_id``: the id the base answers to (default: the model's name).
    ``threads``: torch threads for decoding (None: torch's default; see :mod:`genlab.serving.scheduler`).
    """

    name = "genlab"

    def __init__(
        self,
        model: str | Callable[[], LoadedModel],
        adapters: Mapping[str, str | Path] | None = None,
        *,
        max_batch: int = 8,
        model_id: str | None = None,
        threads: int | None = None,
    ) -> None:
        if max_batch < 1:
            raise InvalidValueError(f"max_batch={max_batch!r} is not allowed: it must be at least 1.")
        self._loader = _loader_for(model)
        self.adapters = dict(adapters or {})
        self.max_batch = max_batch
        self.threads = threads
        self._load_lock = threading.RLock()
        self._tokenizer_lock = threading.Lock()
        self._engine: GenerationEngine | None = None
        self._scheduler: Scheduler | None = None
        self._routes: dict[str, _Route] = {}
        self._past_steps = self._past_rows = 0  # forward passes and rows of schedulers since unloaded
        self.load()  # the first load fixes the tokenizer, the window and the ids
        loaded = self._engine.loaded  # type: ignore[union-attr]
        self._tokenizer = loaded.tokenizer
        self._context_window = int(loaded.context_window)
        self.model_path = loaded.path  # the weights' folder or file (for lineage), None for a model built in memory
        self.base_id = model_id or (model if isinstance(model, str) else loaded.name)
        if self.base_id in self.adapters:
            raise InvalidValueError(f"adapter name {self.base_id!r} is not allowed: it is the base model's id.")
        self._routes = {self.base_id: self._base_route, **self._adapter_routes}

    # --- the Backend protocol ----------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    @property
    def context_window(self) -> int:
        return self._context_window

    def models(self) -> list[str]:
        return [self.base_id, *self.adapters]

    def count_tokens(self, text: str, *, formatted: bool = False) -> int:
        from genlab.prompting.chat import count_tokens

        with self._tokenizer_lock:
            return count_tokens(self._tokenizer, text, chat_formatted=formatted)

    def format_chat(self, messages: list[Message]) -> str:
        from genlab.prompting.chat import format_chat

        with self._tokenizer_lock:
            return format_chat(self._tokenizer, messages)

    def window_for(self, model_id: str) -> int:
        """The context window left for ``model_id``'s prompt and answer (a soft prompt takes its share)."""
        return self._context_window - self._route(model_id).virtual_tokens

    def submit(
        self, model_id: str, prompt: str, settings: GenerationSettings, *, formatted: bool = False, group: str | None = None
    ) -> GenerationHandle:
        route = self._route(model_id)
        with self._tokenizer_lock:
            ids = list(self._tokenizer(prompt, add_special_tokens=not formatted)["input_ids"])
        if not ids:
            raise InvalidValueError("the prompt is not allowed: it is empty (it has no tokens).")
        with self._load_lock:
            self.load()
            engine, scheduler = self._engine, self._scheduler
            assert engine is not None and scheduler is not None
            adapter, soft_prompt = self._routes[model_id].adapter, self._routes[model_id].soft_prompt
        engine.check_fits(len(ids), settings.max_new_tokens, virtual_tokens=route.virtual_tokens)
        rows = engine.new_rows(None, ids, settings, adapter=adapter, soft_prompt=soft_prompt)
        return scheduler.submit(rows, len(ids), group=group)

    def load(self) -> None:
        with self._load_lock:
            if self._engine is not None:
                return
            loaded = self._loader()
            self._base_route, self._adapter_routes, loaded = self._apply_adapters(loaded)
            if self._routes:  # a reload: the same ids, with the new soft prompt tensors
                self._routes = {self.base_id: self._base_route, **self._adapter_routes}
            self._engine = GenerationEngine(loaded, batch_size=self.max_batch)
            self._scheduler = Scheduler(self._engine, threads=self.threads)

    def unload(self) -> None:
        with self._load_lock:
            if self._scheduler is not None:
                self._scheduler.stop()
                self._past_steps += self._scheduler.steps
                self._past_rows += self._scheduler.rows_stepped
            self._engine = self._scheduler = None
        gc.collect()

    # --- more than the protocol --------------------------------------------------------------------

    @property
    def scheduler(self) -> Scheduler | None:
        return self._scheduler

    @property
    def queue_depth(self) -> int:
        """Rows waiting for a place in the batch."""
        scheduler = self._scheduler
        return scheduler.waiting if scheduler is not None else 0

    def decode_stats(self) -> tuple[int, int]:
        """(forward passes, rows summed over them) so far: their ratio is the mean batch size."""
        scheduler = self._scheduler
        current = (scheduler.steps, scheduler.rows_stepped) if scheduler is not None else (0, 0)
        return self._past_steps + current[0], self._past_rows + current[1]

    def _route(self, model_id: str) -> _Route:
        route = self._routes.get(model_id)
        if route is None:
            raise ModelNotFoundError(f"no model {model_id!r} here: this server has {', '.join(self.models())}.")
        return route

    def _apply_adapters(self, loaded: LoadedModel) -> tuple[_Route, dict[str, _Route], LoadedModel]:
        """Put the adapters on ``loaded``; the routes of the base and each adapter, and the model to decode."""
        if not self.adapters:
            return _Route(None), {}, loaded
        from genlab.models.adapters import load_adapters

        adapter_set = load_adapters(loaded, self.adapters)
        soft_prompts = {name: adapter_set.use(name).soft_prompt for name in self.adapters}
        loras = [name for name, soft in soft_prompts.items() if soft is None]
        if not loras:  # soft prompts only: the plain base model, every row says nothing about adapters
            return _Route(None), {name: _Route(None, soft) for name, soft in soft_prompts.items()}, adapter_set.use(None)
        # peft ignores adapter_names while the adapter layers are disabled: activate one LoRA adapter
        # (which enables them); each row then names its own adapter.
        model = adapter_set.use(loras[0])
        routes = {
            name: _Route(BASE_ADAPTER, soft) if soft is not None else _Route(name) for name, soft in soft_prompts.items()
        }
        return _Route(BASE_ADAPTER), routes, replace(model, soft_prompt=None)


def _loader_for(model: str | Callable[[], LoadedModel]) -> Callable[[], LoadedModel]:
    if callable(model):
        return model
    if not isinstance(model, str) or not model.strip():
        raise GenlabError(f"model={model!r} is not allowed: give a pack name, a model folder or a GGUF file.")

    def load() -> LoadedModel:
        from genlab.models.load import load_model

        return load_model(model)

    return load
