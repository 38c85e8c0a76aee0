"""Split a document into windows of at most ``size`` tokens that overlap by ``overlap`` tokens.

Tokens are the embedder's own (``Embedder.token_offsets``), so a chunk never exceeds what the
embedder reads; the chunk's text is the original text between its first and last token, so nothing
is re-detokenised and citations quote the source exactly. A window that would end mid-way through
a line or sentence is pulled back to the last line break or sentence end in its final quarter, so
chunks tend to end on natural boundaries. Written here because it is a dozen lines over the
tokenizer's offsets; the text splitters that do this live in large frameworks (LangChain).

:func:`chunk_stream` gives the same chunks from text that arrives in pieces, holding about
``window_chars`` of it at a time: it tokenizes the text up to its last whitespace (a tokenizer that
splits at whitespace, as WordPiece and BPE pre-tokenizers do, gives the same tokens there as on the
whole text), emits every window that is complete, and keeps the text from the word where the next
window starts.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
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


def chunk_stream(
    pieces: Iterable[str],
    token_offsets: Callable[[str], list[tuple[int, int]]],
    *,
    size: int = 200,
    overlap: int = 40,
    window_chars: int = 1 << 16,
) -> Iterator[Chunk]:
    """The chunks :func:`chunk_text` gives for ``"".join(pieces)``, reading ``pieces`` as it goes."""
    check_chunking(size, overlap)
    source = iter(pieces)
    buffer, base_char, base_token = "", 0, 0  # the buffer's first char and first token, in the whole text
    next_char: int | None = None  # where (in the whole text) the next window starts; None: at the first token
    number, want, finished = 0, window_chars, False
    while True:
        while not finished and len(buffer) < want:
            piece = next(source, None)
            finished = piece is None
            buffer += piece or ""
        cut = len(buffer) if finished else (_last_space(buffer) or len(buffer))
        text = buffer[:cut]
        spans = [span for span in token_offsets(text) if span[1] > span[0]]
        starts = [span[0] for span in spans]
        start = 0 if next_char is None else bisect.bisect_left(starts, next_char - base_char)
        emitted = False
        while start < len(spans):
            end = start + size
            if end >= len(spans) and not finished:
                break  # this window may reach past the text read so far
            end = min(end, len(spans))
            if end < len(spans):
                end = _natural_end(text, spans, start, end, min_end=start + max(1, size - overlap, (3 * size) // 4))
            first, last = spans[start][0], spans[end - 1][1]
            yield Chunk(number, text[first:last], base_char + first, base_char + last, base_token + start, end - start)
            number, emitted = number + 1, True
            if end >= len(spans):
                return
            start = max(end - overlap, start + 1)
        if finished:
            return
        # Keep the text from the start of the word holding the next window's first token.
        resume_at = spans[start][0] if start < len(spans) else cut
        keep = (_last_space(buffer[:resume_at]) or -1) + 1
        if keep == 0 and len(buffer) > 4 * window_chars:
            keep = resume_at  # text without whitespace: cut mid-word rather than hold it all
        next_char = base_char + resume_at
        base_token += bisect.bisect_left(starts, keep)
        base_char += keep
        buffer = buffer[keep:]
        want = window_chars if emitted else 2 * want  # a window longer than the buffer: read more


def _last_space(text: str) -> int | None:
    """Index of the last whitespace in ``text`` after its first character (a safe place to cut it), or None."""
    found = max(text.rfind(" "), text.rfind("\n"), text.rfind("\t"), text.rfind("\r"))
    return found if found > 0 else None


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
