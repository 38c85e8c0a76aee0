"""One sequence being decoded, where decoding rows come from, and how a row picks its next token.

A :class:`DecodeRow` is one choice of one request: its prompt ids, its own settings and random
generator (so a seeded request samples the same tokens whatever shares its batch), optionally the
adapter it runs under and the soft prompt it reads. :func:`pick_tokens` turns a row's logits into its
next token in this order: raw logits -> [log-probabilities recorded, :mod:`genlab.generation.logprobs`]
-> ``logit_bias`` -> frequency/presence and repetition penalties -> the row's constraint mask ->
temperature -> top-k -> top-p -> argmax or a sample. The engine takes rows from a :class:`RowSource`:
a fixed list (:class:`ListSource`, for ``generate``) or an open queue that a server keeps filling
while the batch runs (``genlab.serving.scheduler``).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from genlab.generation.logprobs import TokenLogprob, record_next_token
from genlab.generation.penalties import FrequencyPresencePenalty, LogitBias
from genlab.generation.settings import GenerationSettings

FinishReason = Literal["stop", "length"]


class TokenConstraint(Protocol):
    """What a row's output must follow (a JSON schema, a grammar, a choice list), one token at a time.

    The engine calls :meth:`mask` on the row's raw next-token scores before any penalty or sampling
    warper (so top-k and top-p choose among allowed tokens only), :meth:`accept` with every token the
    row picks (end-of-sequence included), and ends the row with ``"stop"`` once :attr:`finished`.
    """

    def mask(self, scores: Any) -> Any:
        """``scores`` (1, vocab) with every token the constraint forbids now set to ``-inf``."""
        ...

    def accept(self, token: int) -> None:
        ...

    @property
    def finished(self) -> bool:
        ...


@dataclass
class DecodeRow:
    """One sequence being decoded: a request's prompt and one of its choices."""

    request: Any  # whatever identifies the request to its caller (an index, a handle)
    choice: int
    prompt_ids: list[int]
    settings: GenerationSettings
    generator: Any  # torch.Generator, for sampling
    processors: Any  # transformers.LogitsProcessorList: the sampling warpers (temperature, top-k, top-p)
    adapter: str | None = None  # peft adapter name for this row ("__base__": none); None: the model as it is
    soft_prompt: Any = None  # (virtual tokens, hidden) embeddings read right before the prompt, or None
    generated: list[int] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    stop_at: int | None = None  # character offset of a stop sequence in the decoded text
    constraint: TokenConstraint | None = None  # structured output the row must follow, or None
    penalties: Any = None  # LogitsProcessorList applied before the constraint: bias, penalties; None: none
    token_logprobs: list[TokenLogprob] = field(default_factory=list)  # per picked token (end-of-sequence too)
    prompt_logprobs: list[TokenLogprob | None] | None = None  # per prompt token (the first None), once prefilled

    @property
    def virtual_tokens(self) -> int:
        return 0 if self.soft_prompt is None else int(self.soft_prompt.shape[0])

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


class RowSource(Protocol):
    def take(self, limit: int) -> list[DecodeRow]:
        """Up to ``limit`` rows waiting to be decoded (none: nothing waits right now)."""
        ...


class ListSource:
    """A fixed list of rows, handed out in order."""

    def __init__(self, rows: Sequence[DecodeRow]) -> None:
        self._rows = list(rows)

    def take(self, limit: int) -> list[DecodeRow]:
        taken, self._rows = self._rows[:limit], self._rows[limit:]
        return taken


def new_row(
    request: Any,
    choice: int,
    prompt_ids: list[int],
    settings: GenerationSettings,
    *,
    adapter: str | None = None,
    soft_prompt: Any = None,
) -> DecodeRow:
    """A row with its logits processors (penalties, then ``generate``'s warpers) and its seeded generator."""
    import torch
    from transformers import (
        LogitsProcessorList,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    penalties = LogitsProcessorList()
    if settings.logit_bias:
        penalties.append(LogitBias(settings.logit_bias))
    if settings.frequency_penalty or settings.presence_penalty:
        penalties.append(FrequencyPresencePenalty(settings.frequency_penalty, settings.presence_penalty, len(prompt_ids)))
    if settings.repetition_penalty != 1.0:
        penalties.append(RepetitionPenaltyLogitsProcessor(settings.repetition_penalty))
    processors = LogitsProcessorList()
    if not settings.greedy:
        if settings.temperature != 1.0:
            processors.append(TemperatureLogitsWarper(settings.temperature))
        if settings.top_k > 0:
            processors.append(TopKLogitsWarper(settings.top_k))
        if settings.top_p < 1.0:
            processors.append(TopPLogitsWarper(settings.top_p))
    seed = settings.seed if settings.seed is not None else secrets.randbits(63)
    generator = torch.Generator().manual_seed(seed + choice)
    row = DecodeRow(request, choice, prompt_ids, settings, generator, processors, adapter, soft_prompt)
    row.penalties = penalties if len(penalties) else None
    return row


def pick_tokens(logits: Any, rows: Sequence[DecodeRow]) -> list[int]:
    """The next token of each row from its (rows, vocab) logits: argmax, or a sample from its generator.

    Rows that ask for log-probabilities get them recorded from the raw logits (see the module docstring).
    """
    import torch

    picked = []
    for i, row in enumerate(rows):
        scores = logits[i : i + 1].float()
        history = None
        if row.penalties is not None:
            history = torch.tensor([row.prompt_ids + row.generated], dtype=torch.long)
            scores = row.penalties(history, scores)
        if row.constraint is not None:
            scores = row.constraint.mask(scores)
        if len(row.processors):
            if history is None:
                history = torch.tensor([row.prompt_ids + row.generated], dtype=torch.long)
            scores = row.processors(history, scores)
        if row.settings.greedy:
            picked.append(int(scores.argmax(dim=-1)))
        else:
            probs = torch.softmax(scores, dim=-1)
            picked.append(int(torch.multinomial(probs[0], 1, generator=row.generator)))
    record_next_token(logits, rows, picked)
    return picked


def adapter_names(rows: Sequence[DecodeRow]) -> dict[str, Any]:
    """peft's per-row ``adapter_names`` forward argument, when the rows name their adapters.

    Either every row names its adapter (a server mixing adapters in one batch) or none does (the
    model runs as it is, with whatever adapter is active).
    """
    named = [row.adapter for row in rows]
    if all(name is None for name in named):
        return {}
    if any(name is None for name in named):
        raise ValueError("either every row in a batch names its adapter or none does")
    return {"adapter_names": named}
