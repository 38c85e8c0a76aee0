"""Split a document into windows of at most ``size`` tokens that overlap by ``overlap`` tokens.

Tokens are the embedder's own (``Embedder.token_offsets``), so a chunk never exceeds what the
embedder reads; the chunk's text is the original text between its first and last token, so nothing
is re-detokenised and citations quote the source exactly. A window that would end mid-way through
a line or sentence is pulled back to the last line break or sentence end in its final quarter, so
chunks tend to end on natural boundaries. Written here because it is a dozen lines over the
tokenizer's offsets; the text splitters that do this live in large frameworks (LangChain).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from genlab.errors import InvalidValueError


@dataclass(frozen=True)
class Chunk:
    index: int  # position within its document, from 0
    text: str
    start_char: int
    end_char: int
    start_token: int
    n_tokens: int


def check_chunking(size: int, overlap: int) -> None:
    if size < 1:
        raise InvalidValueError(f"chunk_size={size} is not allowed: a chunk needs at least 1 token.")
    if not 0 <= overlap < size:
        raise InvalidValueError(f"overlap={overlap} is not allowed: it must be at least 0 and below chunk_size={size}.")


def chunk_text(
    text: str, token_offsets: Callable[[str], list[tuple[int, int]]], *, size: int = 200, overlap: int = 40
) -> list[Chunk]:
    """Chunks of ``text``: windows of ``size`` tokens, each starting ``size - overlap`` after the last."""
    check_chunking(size, overlap)
    spans = [span for span in token_offsets(text) if span[1] > span[0]]
    chunks: list[Chunk] = []
    start = 0
    while start < len(spans):
        end = min(start + size, len(spans))  # exclusive token index
        if end < len(spans):
            end = _natural_end(text, spans, start, end, min_end=start + max(1, size - overlap, (3 * size) // 4))
        first, last = spans[start][0], spans[end - 1][1]
        chunks.append(Chunk(len(chunks), text[first:last], first, last, start, end - start))
        if end >= len(spans):
            break
        start = max(end - overlap, start + 1)
    return chunks


def _natural_end(text: str, spans: list[tuple[int, int]], start: int, end: int, min_end: int) -> int:
    """The last token end in [min_end, end] followed by a line break or sentence end; else ``end``."""
    for candidate in range(end, min(min_end, end) - 1, -1):
        if candidate <= start:
            break
        gap = text[spans[candidate - 1][1] : spans[candidate][0]] if candidate < len(spans) else ""
        token = text[spans[candidate - 1][0] : spans[candidate - 1][1]]
        if "\n" in gap or token in {".", "!", "?"}:
            return candidate
    return end
