"""genlab's own engine as a serving backend: dynamic batching, several adapters on one base.

The base model's id is its name (``smollm2-135m-instruct``); each adapter of ``--adapter NAME=PATH``
is served as the id ``NAME`` (the scheme vLLM uses for LoRA modules). The adapters sit on one copy
of the base weights (:class:`genlab.models.adapters.AdapterSet`), and requests for different ids
share forward passes: every row of a batch names its LoRA adapter through peft's per-row
``adapter_names`` forward argument (``"__base__"`` for the base), and a prompt-tuning adapter's soft
prompt is read by its rows alone.

The tokenizer stays in memory when the weights are unloaded (scale to zero), so requests are
validated and their tokens counted without a cold start.

Adapters come and go while the server runs (:meth:`GenlabBackend.add_adapter`, ``remove_adapter``):

- A new adapter is put on the model in the scheduler thread between two forward passes
  (:meth:`Scheduler.call_between_steps`), and its id answers only once it is fully loaded, so no row
  ever runs on a half-loaded adapter. The one exception is the first LoRA adapter on a base served
  plain: the model must then be wrapped by peft and its rows name their adapters, so new requests
  wait while those in flight finish, and the model is loaded again with the adapter (a pause of at
  most the longest request in flight plus a load).
- Removing an adapter *waits* for the requests using it: its id stops answering at once (new
  requests get 404), the requests already admitted for it finish with it, and then it is taken off
  the model between two steps. Nothing is refused or cut short. The last LoRA adapter leaving
  unwraps the base the way the first one wrapped it (requests in flight finish, then a load).
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError, InvalidValueError, ModelNotFoundError
from genlab.generation.constrained import ConstraintFactory, Grammars
from genlab.generation.engine import GenerationEngine
from genlab.generation.settings import GenerationSettings
from genlab.models.adapters import AdapterSet, check_base, load_adapters, read_adapter_info
from genlab.models.load import LoadedModel
from genlab.serving.backend import FEATURES, GenerationHandle, Message
from genlab.serving.row_results import RowsHandle
from genlab.serving.scheduler import Scheduler
from genlab.serving.token_pieces import TokenPieces
from genlab.serving.tool_prompt import render_chat

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
    features = FEATURES  # every optional request field (genlab.serving.backend), and token prompts

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
        self._adapter_set: AdapterSet | None = None
        self._routes: dict[str, _Route] = {}
        self._change_lock = threading.Lock()  # one adapter change at a time
        self._flight = threading.Condition()  # guards the two below
        self._submitting: Counter[str] = Counter()  # per model id: submits between the route lookup and the queue
        self._in_flight: dict[str, set[GenerationHandle]] = {}  # per model id: requests queued or decoding
        self._past_steps = self._past_rows = 0  # forward passes and rows of schedulers since unloaded
        self.load()  # the first load fixes the tokenizer, the window and the ids
        loaded = self._engine.loaded  # type: ignore[union-attr]
        self._tokenizer = loaded.tokenizer
        self._pieces = TokenPieces(loaded.tokenizer)
        self.grammars = Grammars.for_model(loaded)  # structured outputs and tool calls (constrained decoding)
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

    def format_chat(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> str:
        """The conversation (tool calls and results included) and ``tools`` in the prompt (:mod:`genlab.serving.tool_prompt`)."""
        with self._tokenizer_lock:
            return render_chat(self._tokenizer, messages, tools)

    def window_for(self, model_id: str) -> int:
        """The context window left for ``model_id``'s prompt and answer (a soft prompt takes its share)."""
        return self._context_window - self._route(model_id).virtual_tokens

    def submit(
        self, model_id: str, prompt: str, settings: GenerationSettings, *, formatted: bool = False, group: str | None = None,
        constraint: ConstraintFactory | None = None,
    ) -> GenerationHandle:
        self._route(model_id)
        with self._tokenizer_lock:
            ids = list(self._tokenizer(prompt, add_special_tokens=not formatted)["input_ids"])
        return self.submit_tokens(model_id, ids, settings, group=group, constraint=constraint)

    def submit_tokens(
        self, model_id: str, prompt_ids: list[int], settings: GenerationSettings, *, group: str | None = None,
        constraint: ConstraintFactory | None = None,
    ) -> GenerationHandle:
        """As :meth:`submit`, with the prompt given as token ids (:class:`TokenBackend`); ``constraint``: each row's grammar."""
        self._route(model_id)
        ids = list(prompt_ids)
        if not ids:
            raise InvalidValueError("the prompt is not allowed: it is empty (it has no tokens).")
        with self._load_lock:
            self.load()
            engine, scheduler = self._engine, self._scheduler
            assert engine is not None and scheduler is not None
            route = self._route(model_id)  # again: the adapter may have gone meanwhile
            with self._flight:
                self._submitting[model_id] += 1
        try:
            engine.check_fits(len(ids), settings.max_new_tokens, virtual_tokens=route.virtual_tokens)
            rows = engine.new_rows(None, ids, settings, adapter=route.adapter, soft_prompt=route.soft_prompt, constraint=constraint)
            handle = RowsHandle(scheduler.submit(rows, len(ids), group=group), rows, ids, self.detokenize)
            with self._flight:
                handles = self._in_flight.setdefault(model_id, set())
                handles.difference_update([h for h in handles if h.done])  # type: ignore[attr-defined]
                handles.add(handle)
            return handle
        finally:
            with self._flight:
                self._submitting[model_id] -= 1
                self._flight.notify_all()

    def load(self) -> None:
        with self._load_lock:
            if self._engine is not None:
                return
            loaded = self._loader()
            self._adapter_set = adapter_set = load_adapters(loaded, self.adapters)
            self._base_route = _base_route(adapter_set)
            self._adapter_routes = {name: _adapter_route(adapter_set, name) for name in self.adapters}
            if self._routes:  # a reload: the same ids, with the new soft prompt tensors
                self._routes = {self.base_id: self._base_route, **self._adapter_routes}
            self._engine = GenerationEngine(_model_to_decode(adapter_set), batch_size=self.max_batch)
            self._scheduler = Scheduler(self._engine, threads=self.threads)

    def unload(self) -> None:
        with self._load_lock:
            if self._scheduler is not None:
                self._scheduler.stop()
                self._past_steps += self._scheduler.steps
                self._past_rows += self._scheduler.rows_stepped
            self._engine = self._scheduler = self._adapter_set = None
        gc.collect()

    # --- adapters that come and go (see the module docstring) ------------------------------------

    def add_adapter(self, name: str, adapter: str | Path) -> None:
        """Serve the adapter in folder ``adapter`` as the model id ``name``, without a restart."""
        with self._change_lock:
            if name == self.base_id or name in self._routes:
                raise InvalidValueError(f"the adapter name {name!r} is taken on this server: choose another name.")
            info = read_adapter_info(adapter)
            with self._load_lock:
                self.load()
                adapter_set, scheduler = self._adapter_set, self._scheduler
                assert adapter_set is not None and scheduler is not None
                check_base(info, adapter_set.base)  # a wrong base is refused before anything changes
                if not adapter_set.wraps_model and not info.is_prompt_learning:  # the first LoRA adapter wraps the base
                    self.adapters = {**self.adapters, name: str(info.path)}
                    try:
                        self._reload_after_requests()
                    except BaseException:
                        self.adapters = _without(self.adapters, name)
                        self._reload_after_requests()
                        raise
                    return
                scheduler.call_between_steps(lambda: _changed(adapter_set, lambda: adapter_set.add(name, info.path)))
                # New dicts, never changed in place: other threads iterate them without the lock (models()).
                route = _adapter_route(adapter_set, name)
                self.adapters = {**self.adapters, name: str(info.path)}
                self._adapter_routes = {**self._adapter_routes, name: route}
                self._routes = {**self._routes, name: route}

    def remove_adapter(self, name: str) -> None:
        """Stop serving ``name``: new requests get 404, those admitted finish, then it leaves the model."""
        with self._change_lock:
            with self._load_lock:
                if name not in self.adapters:
                    raise ModelNotFoundError(f"no adapter {name!r} on this server (it has: {', '.join(self.adapters) or 'none'}).")
                self._routes = _without(self._routes, name)
                self._adapter_routes = _without(self._adapter_routes, name)
                self.adapters = _without(self.adapters, name)
            self._wait_for_requests([name])
            with self._load_lock:
                adapter_set, scheduler = self._adapter_set, self._scheduler
                if adapter_set is None or scheduler is None:  # unloaded: the next load leaves it out
                    return
                if _lora_names(adapter_set) == [name]:  # the last LoRA adapter: the base goes back to plain
                    self._reload_after_requests()
                else:
                    scheduler.call_between_steps(lambda: _changed(adapter_set, lambda: adapter_set.remove(name)))

    def _reload_after_requests(self) -> None:
        """(Holding the load lock, so new requests wait.) Let the requests in flight finish, then load the model
        again with ``self.adapters``: how the base is wrapped by peft for its first LoRA adapter and unwrapped
        after its last."""
        self._wait_for_requests(None)
        self.unload()
        self.load()
        self._routes = {self.base_id: self._base_route, **self._adapter_routes}

    def _wait_for_requests(self, model_ids: Iterable[str] | None) -> None:
        """Wait until every request admitted for ``model_ids`` (None: for any id) has ended, however it ends."""
        ids = None if model_ids is None else set(model_ids)
        with self._flight:
            self._flight.wait_for(lambda: not any(n for m, n in self._submitting.items() if ids is None or m in ids))
            keys = [m for m in self._in_flight if ids is None or m in ids]
            handles = [handle for m in keys for handle in self._in_flight.pop(m)]
        for handle in handles:
            with contextlib.suppress(Exception):  # a failed or cancelled request has ended too
                handle.result()

    # --- TokenBackend: token ids in and out (genlab.serving.backend) ----------------------------------

    @property
    def vocab_size(self) -> int:
        return len(self._tokenizer)

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer, for reading its settings (encode through :meth:`tokenize`: it locks)."""
        return self._tokenizer

    def tokenize(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        with self._tokenizer_lock:
            return list(self._tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def detokenize(self, ids: list[int], *, skip_special_tokens: bool = True) -> str:
        """The text of ``ids``; by default without special tokens (as generated text is)."""
        with self._tokenizer_lock:
            return self._tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def token_pieces(self, ids: list[int]) -> list[tuple[str, bytes]]:
        with self._tokenizer_lock:
            return self._pieces(ids)

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



def _without(mapping: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if key != name}


def _lora_names(adapter_set: AdapterSet) -> list[str]:
    return [name for name in adapter_set.names if adapter_set.soft_prompt(name) is None]


def _model_to_decode(adapter_set: AdapterSet) -> LoadedModel:
    """The base, plain (no weight adapter: rows say nothing about adapters), or wrapped by peft with one
    LoRA adapter active -- peft ignores ``adapter_names`` while the adapter layers are disabled, and
    activating one enables them; each row then names its own adapter."""
    loras = _lora_names(adapter_set)
    if not loras:
        return adapter_set.use(None)
    return replace(adapter_set.use(loras[0]), soft_prompt=None)


def _changed(adapter_set: AdapterSet, change: Callable[[], None]) -> None:
    """Make ``change`` to the adapters, then leave the model as decoding needs it (the same peft model object)."""
    change()
    _model_to_decode(adapter_set)


def _base_route(adapter_set: AdapterSet) -> _Route:
    return _Route(BASE_ADAPTER if adapter_set.wraps_model else None)


def _adapter_route(adapter_set: AdapterSet, name: str) -> _Route:
    """How rows for adapter ``name`` run: a soft prompt on the base, or their own LoRA adapter."""
    soft = adapter_set.soft_prompt(name)
    if soft is not None:
        return _Route(_base_route(adapter_set).adapter, soft)
    return _Route(name)


def _loader_for(model: str | Callable[[], LoadedModel]) -> Callable[[], LoadedModel]:
    if callable(model):
        return model
    if not isinstance(model, str) or not model.strip():
        raise GenlabError(f"model={model!r} is not allowed: give a pack name, a model folder or a GGUF file.")

    def load() -> LoadedModel:
        from genlab.models.load import load_model

        return load_model(model)

    return load
