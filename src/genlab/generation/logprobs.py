"""Log-probabilities of picked tokens and of prompt tokens, read from the logits the engine computes anyway.

**Which distribution**: the raw model distribution, ``log_softmax(logits)`` of the model's own
logits, before ``logit_bias``, penalties, a structured-output mask, temperature, top-k and top-p (as
vLLM's default, ``logprobs_mode="raw_logprobs"``). So a token's log-probability does not depend on
the sampling settings of the request, and a prompt's score is the model's likelihood of it (what
lm-evaluation-harness compares between choices).

A row asks with ``settings.logprobs = k`` (each picked token's log-probability and the k most likely
tokens at that step, end-of-sequence included) and ``settings.prompt_logprobs = k`` (the same for
each prompt token after the first, read from the prefill's logits over the whole prompt). Rows that
ask nothing cost nothing: the next-token log-softmax runs on the rows that ask only, and only rows
that score their prompt keep the prefill's logits beyond the last column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class TokenLogprob:
    """One position: the token there, its log-probability, and the ``k`` most likely tokens (best first)."""

    token: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


def next_token_logprobs(logits: torch.Tensor, picked: Sequence[int], tops: Sequence[int]) -> list[TokenLogprob]:
    """``logits`` (rows, vocab) of the rows that ask; ``picked[i]`` their tokens, ``tops[i]`` their k."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)  # (rows, vocab)
    chosen = logprobs.gather(1, torch.tensor(list(picked), dtype=torch.long)[:, None])[:, 0].tolist()
    widest = max(tops, default=0)
    values, ids = logprobs.topk(widest, dim=-1) if widest else (None, None)
    entries = []
    for i, (token, k) in enumerate(zip(picked, tops, strict=True)):
        top = tuple(zip(ids[i, :k].tolist(), values[i, :k].tolist(), strict=True)) if k else ()
        entries.append(TokenLogprob(int(token), float(chosen[i]), top))
    return entries


def prompt_logprobs(logits: torch.Tensor, prompt_ids: Sequence[int], k: int) -> list[TokenLogprob | None]:
    """Each prompt token's log-probability given the tokens before it; the first has none.

    ``logits``: (columns, vocab), the prompt's tokens in the last ``len(prompt_ids)`` columns.
    """
    length = len(prompt_ids)
    if length < 2:
        return [None] * length
    window = logits[-length:-1].float()  # column j predicts prompt token j + 1
    logprobs = torch.log_softmax(window, dim=-1)  # (length - 1, vocab)
    targets = torch.tensor(list(prompt_ids[1:]), dtype=torch.long)
    chosen = logprobs.gather(1, targets[:, None])[:, 0].tolist()
    values, ids = logprobs.topk(k, dim=-1) if k else (None, None)
    entries: list[TokenLogprob | None] = [None]
    for j, token in enumerate(prompt_ids[1:]):
        top = tuple(zip(ids[j].tolist(), values[j].tolist(), strict=True)) if k else ()
        entries.append(TokenLogprob(int(token), float(chosen[j]), top))
    return entries


def record_next_token(logits: Any, rows: Sequence[Any], picked: Sequence[int]) -> None:
    """Append each asking row's picked token and its log-probabilities to ``row.token_logprobs``."""
    asking = [i for i, row in enumerate(rows) if row.settings.logprobs is not None and row.settings.max_new_tokens > 0]
    if not asking:
        return
    index = torch.tensor(asking, dtype=torch.long)
    entries = next_token_logprobs(
        logits.index_select(0, index), [picked[i] for i in asking], [rows[i].settings.logprobs for i in asking]
    )
    for i, entry in zip(asking, entries, strict=True):
        rows[i].token_logprobs.append(entry)
