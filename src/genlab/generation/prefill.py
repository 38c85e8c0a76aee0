"""Reading new prompts into a batch: left padding, soft prompts, and the prefill forward passes.

Decoder-only prompts are left-padded so every prompt ends in the last column (whose logits give the
next token); a soft prompt's vectors sit right before its prompt. A prefill keeps only the last
column's logits (``logits_to_keep=1``: the LM head skips the rest of the prompt) -- except for rows
that score their prompt (``settings.prompt_logprobs``, what ``echo`` with ``logprobs`` asks): they
prefill in passes of their own that keep every column's logits, at most
:data:`SCORING_LOGITS_BUDGET` floats per pass, and record their prompt's log-probabilities
(:func:`genlab.generation.logprobs.prompt_logprobs`). The rows' batch states are then merged, so
scoring rows and the others share every decode step after.
"""

from __future__ import annotations

from typing import Any

import torch

from genlab.generation.batch_state import BatchState
from genlab.generation.cache_argument import cache_of
from genlab.generation.growing_cache import make_growing
from genlab.generation.logprobs import prompt_logprobs
from genlab.generation.rows import DecodeRow, adapter_names
from genlab.models.load import LoadedModel

SCORING_LOGITS_BUDGET = 64 * 2**20  # logits (floats) a prefill of prompt-scoring rows may hold: 256 MB in fp32


def left_padded(loaded: LoadedModel, pad_id: int, rows: list[DecodeRow]) -> tuple[dict[str, Any], Any]:
    """The prompts of ``rows`` left-padded as model inputs (ids, or embeddings with soft prompts) and mask."""
    width = max(len(r.prompt_ids) + r.virtual_tokens for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):  # every prompt ends in the last column, its soft prompt just before
        input_ids[i, width - len(row.prompt_ids) :] = torch.tensor(row.prompt_ids)
        mask[i, width - len(row.prompt_ids) - row.virtual_tokens :] = 1
    if not any(row.virtual_tokens for row in rows):
        return {"input_ids": input_ids}, mask
    embeds = loaded.model.get_input_embeddings()(input_ids)
    for i, row in enumerate(rows):
        if row.virtual_tokens:
            start = width - len(row.prompt_ids) - row.virtual_tokens
            embeds[i, start : start + row.virtual_tokens] = row.soft_prompt.to(embeds.dtype)
    return {"inputs_embeds": embeds}, mask


def prefill(loaded: LoadedModel, pad_id: int, rows: list[DecodeRow], *, all_logits: bool = False) -> tuple[BatchState, Any]:
    """Read the prompts of ``rows`` together; return their batch state and (rows, vocab) next-token logits.

    ``all_logits``: keep every column's logits and record each row's prompt log-probabilities.
    """
    inputs, mask = left_padded(loaded, pad_id, rows)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = loaded.model(
        **inputs, attention_mask=mask, position_ids=positions, use_cache=True,
        logits_to_keep=0 if all_logits else 1, **adapter_names(rows),
    )  # fmt: skip
    if all_logits:
        for i, row in enumerate(rows):  # (columns, vocab); the prompt ends in the last column
            row.prompt_logprobs = prompt_logprobs(out.logits[i], row.prompt_ids, row.settings.prompt_logprobs or 0)
    return BatchState(make_growing(cache_of(out)), mask, positions[:, -1:]), out.logits[:, -1, :]


def prefill_joiners(loaded: LoadedModel, pad_id: int, rows: list[DecodeRow]) -> tuple[list[DecodeRow], BatchState, Any]:
    """Prefill new rows: scoring rows in passes of their own, the others together (see the module docstring).

    Returns the rows in the order of the merged batch state, the state, and their next-token logits.
    """
    plain = [row for row in rows if row.settings.prompt_logprobs is None]
    scoring = [row for row in rows if row.settings.prompt_logprobs is not None]
    groups = ([plain] if plain else []) + scoring_groups(scoring, len(loaded.tokenizer))
    ordered: list[DecodeRow] = []
    state: BatchState | None = None
    last_logits = []
    for group in groups:
        joined, logits = prefill(loaded, pad_id, group, all_logits=group is not plain)
        ordered += group
        last_logits.append(logits)
        if state is None:
            state = joined
        else:
            state.merge(joined)
    assert state is not None
    return ordered, state, torch.cat(last_logits, dim=0)


def scoring_groups(rows: list[DecodeRow], vocab: int) -> list[list[DecodeRow]]:
    """Rows that score their prompt, in prefill groups whose full logits stay within the budget (one row at least)."""
    groups: list[list[DecodeRow]] = []
    width = 0  # columns of the current group: its first row's, the longest
    for row in sorted(rows, key=lambda r: -(len(r.prompt_ids) + r.virtual_tokens)):
        if groups and (len(groups[-1]) + 1) * width * vocab <= SCORING_LOGITS_BUDGET:
            groups[-1].append(row)
        else:
            groups.append([row])
            width = len(row.prompt_ids) + row.virtual_tokens
    return groups
