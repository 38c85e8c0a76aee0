"""A key/value cache layer that appends in place: decode steps write one column into spare room.

transformers' ``DynamicLayer`` appends each step's keys and values with ``torch.cat``, which copies
the whole cache of every layer on every step: at batch 8 with a 100-token cache that copying was
about a tenth of a decode step of the default model on 2 cores. :class:`GrowingLayer` keeps its
keys and values as views into larger buffers with spare columns on the right, so a step writes only
its own column; when the room runs out the buffers are reallocated with half as much again (an
amortised constant cost per token, like a Python list).

The layer stays a ``DynamicLayer`` to everything that reads it (the model's attention reads
``update``'s return value; ``keys``/``values`` have the usual shape). Code that replaces ``keys`` and
``values`` from outside — ``batch_select_indices``, or :mod:`genlab.generation.batch_state` dropping
finished rows, trimming columns and merging new rows — is noticed at the next ``update``, which
copies the new tensors into fresh buffers. Written here because transformers has no growable cache:
its ``StaticCache`` preallocates the whole context window and attends over all of it.
"""

from __future__ import annotations

from typing import Any

from transformers.cache_utils import DynamicLayer

MIN_SPARE_COLUMNS = 64


class GrowingLayer(DynamicLayer):
    """A full-attention cache layer whose ``update`` writes into spare columns instead of concatenating."""

    def __init__(self) -> None:
        super().__init__()
        self._key_buffer: Any = None
        self._value_buffer: Any = None
        self._used = 0  # columns of the buffers in use; the rest are spare

    @classmethod
    def adopting(cls, layer: DynamicLayer) -> GrowingLayer:
        """A growing layer holding ``layer``'s keys and values."""
        grown = cls()
        if layer.is_initialized:  # copied into buffers at the first update
            grown.lazy_initialization(layer.keys, layer.values)
            grown.keys, grown.values = layer.keys, layer.values
        return grown

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new = key_states.shape[-2]
        if not self._holds_current_states() or self._used + new > self._key_buffer.shape[-2]:
            self._reallocate(key_states, value_states)
        end = self._used + new
        self._key_buffer[..., self._used : end, :] = key_states
        self._value_buffer[..., self._used : end, :] = value_states
        self._used = end
        self.keys = self._key_buffer[..., :end, :]
        self.values = self._value_buffer[..., :end, :]
        return self.keys, self.values

    def reset(self) -> None:
        self._key_buffer = self._value_buffer = None
        self._used = 0
        super().reset()

    @property
    def spare_columns(self) -> int:
        return 0 if self._key_buffer is None else int(self._key_buffer.shape[-2]) - self._used

    def _holds_current_states(self) -> bool:
        """False when ``keys``/``values`` were replaced from outside since the last ``update``."""
        if self._key_buffer is None:
            return False
        return (
            self.keys.data_ptr() == self._key_buffer.data_ptr()
            and self.values.data_ptr() == self._value_buffer.data_ptr()
            and tuple(self.keys.shape) == (*self._key_buffer.shape[:-2], self._used, self._key_buffer.shape[-1])
        )

    def _reallocate(self, key_states: Any, value_states: Any) -> None:
        """New buffers holding the current keys and values, with room for these states and more."""
        current = self.keys is not None and self.keys.numel() > 0
        used = int(self.keys.shape[-2]) if current else 0
        new = int(key_states.shape[-2])
        capacity = used + max(new, MIN_SPARE_COLUMNS, used // 2)
        self._key_buffer, self._value_buffer = (
            states.new_empty((*states.shape[:-2], capacity, states.shape[-1])) for states in (key_states, value_states)
        )
        if current:
            self._key_buffer[..., :used, :] = self.keys
            self._value_buffer[..., :used, :] = self.values
        self._used = used


def make_growing(cache: Any) -> Any:
    """Swap ``cache``'s plain full-attention layers for :class:`GrowingLayer` ones (in place); returns it."""
    layers = getattr(cache, "layers", None)
    if layers:
        for index, layer in enumerate(layers):
            if type(layer) is DynamicLayer:
                layers[index] = GrowingLayer.adopting(layer)
    return cache
