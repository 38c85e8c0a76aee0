"""The running batch of a decoder-only model under continuous batching.

A batch is a KV cache plus, per row, the attention mask over the cache columns and the position of
the row's last token. Rows leave when they finish (their cache rows are dropped) and new rows join
after their own prefill: the two caches are left-padded with masked zero columns to the same length
and stacked. Masked columns get zero attention weight, so a row's answer does not depend on who it
shares the batch with. Columns that no remaining row attends to are trimmed away.

Merging needs plain ``DynamicLayer`` caches (full attention; the engine swaps them for
:class:`~genlab.generation.growing_cache.GrowingLayer`, which appends in place);
:func:`supports_merging` tells, and the engine falls back to static batches otherwise
(sliding-window, linear-attention or encoder-decoder).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def supports_merging(cache: Any) -> bool:
    from transformers.cache_utils import DynamicLayer

    from genlab.generation.growing_cache import GrowingLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) in (DynamicLayer, GrowingLayer) for layer in layers)


@dataclass
class BatchState:
    cache: Any  # transformers DynamicCache, (batch, kv_heads, columns, head_dim) per layer
    mask: Any  # (batch, columns) long: 1 where a row attends
    positions: Any  # (batch, 1) long: position id of each row's last token

    @property
    def size(self) -> int:
        return int(self.mask.shape[0])

    def keep(self, rows: list[int]) -> None:
        """Keep only these rows (indices into the batch), then trim columns nobody attends to."""
        import torch

        index = torch.tensor(rows, dtype=torch.long)
        self.cache.batch_select_indices(index)
        self.mask = self.mask[index]
        self.positions = self.positions[index]
        attended = self.mask.any(dim=0).nonzero()
        first = int(attended[0]) if attended.numel() else self.mask.shape[1]
        if first > 0:
            for layer in self.cache.layers:
                layer.keys = layer.keys[..., first:, :]
                layer.values = layer.values[..., first:, :]
            self.mask = self.mask[:, first:]

    def merge(self, other: BatchState) -> None:
        """Append ``other``'s rows, left-padding whichever cache is shorter."""
        import torch

        width = max(self.mask.shape[1], other.mask.shape[1])
        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            mine.keys = torch.cat([_left_pad(mine.keys, width), _left_pad(theirs.keys, width)], dim=0)
            mine.values = torch.cat([_left_pad(mine.values, width), _left_pad(theirs.values, width)], dim=0)
        self.mask = torch.cat([_left_pad_mask(self.mask, width), _left_pad_mask(other.mask, width)], dim=0)
        self.positions = torch.cat([self.positions, other.positions], dim=0)

    def extend_for_step(self) -> None:
        """Before a decode step: one more attended column per row, and the next position."""
        import torch

        self.mask = torch.cat([self.mask, torch.ones((self.size, 1), dtype=self.mask.dtype)], dim=-1)
        self.positions = self.positions + 1


def _left_pad(states: Any, width: int) -> Any:
    import torch

    missing = width - states.shape[-2]
    if missing == 0:
        return states
    pad = torch.zeros((*states.shape[:-2], missing, states.shape[-1]), dtype=states.dtype)
    return torch.cat([pad, states], dim=-2)


def _left_pad_mask(mask: Any, width: int) -> Any:
    import torch

    missing = width - mask.shape[1]
    if missing == 0:
        return mask
    return torch.cat([torch.zeros((mask.shape[0], missing), dtype=mask.dtype), mask], dim=1)
