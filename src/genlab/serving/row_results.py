"""What genlab's engine knows about a request beyond its text: token ids and log-probabilities.

:class:`RowsHandle` wraps the scheduler's handle of one request and reads the request's
:class:`~genlab.generation.rows.DecodeRow`\\ s (the same objects the engine decodes): each streamed
delta carries the log-probabilities of the tokens decoded by the time its text was sent (the tokens
still held back come with the last delta), and the result carries the prompt's and every choice's
token ids and log-probabilities. A choice cut before a stop sequence keeps the log-probabilities of
the tokens that start before the cut.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

from genlab.generation.logprobs import TokenLogprob
from genlab.generation.rows import DecodeRow
from genlab.serving.backend import GenerationHandle, GenerationResult, TextDelta

Decode = Callable[[list[int]], str]  # token ids -> text (special tokens skipped), thread-safe


class RowsHandle:
    """A :class:`GenerationHandle` adding token ids and log-probabilities from the request's rows."""

    def __init__(self, inner: GenerationHandle, rows: list[DecodeRow], prompt_ids: list[int], decode: Decode) -> None:
        self._inner = inner
        self._rows = rows
        self._prompt_ids = tuple(prompt_ids)
        self._decode = decode
        self._streamed = [0] * len(rows)  # log-probability entries sent so far, per choice
        self._asks = rows[0].settings.logprobs is not None

    def __iter__(self) -> Iterator[TextDelta]:
        for delta in self._inner:
            yield replace(delta, logprobs=self._unsent(delta.choice, len(self._rows[delta.choice].token_logprobs)))
        if self._asks:
            for choice, row in enumerate(self._rows):
                rest = self._unsent(choice, len(kept_logprobs(row, self._decode)))
                if rest:
                    yield TextDelta(choice, "", rest)

    def _unsent(self, choice: int, upto: int) -> tuple[TokenLogprob, ...]:
        if not self._asks or upto <= self._streamed[choice]:
            return ()
        entries = tuple(self._rows[choice].token_logprobs[self._streamed[choice] : upto])
        self._streamed[choice] = upto
        return entries

    def result(self, timeout: float | None = None) -> GenerationResult:
        result = self._inner.result(timeout)
        choices = [
            replace(
                choice,
                token_ids=tuple(row.generated),
                logprobs=tuple(kept_logprobs(row, self._decode)) if self._asks else None,
            )
            for choice, row in zip(result.choices, self._rows, strict=True)
        ]
        scored = self._rows[0].prompt_logprobs
        return replace(
            result, choices=choices, prompt_ids=self._prompt_ids, prompt_logprobs=tuple(scored) if scored is not None else None
        )

    def cancel(self) -> None:
        self._inner.cancel()

    @property
    def done(self) -> bool:
        return bool(getattr(self._inner, "done", False))


def kept_logprobs(row: DecodeRow, decode: Decode) -> list[TokenLogprob]:
    """The row's log-probability entries, without those of tokens that start after its stop sequence."""
    entries = row.token_logprobs
    if row.stop_at is None:
        return list(entries)
    kept = 0
    while kept < min(len(row.generated), len(entries)) and len(decode(row.generated[:kept])) < row.stop_at:
        kept += 1
    return list(entries[:kept])
