"""Log-probabilities in OpenAI's two wire formats, from the engine's :class:`TokenLogprob` entries.

Chat (``choices[].logprobs``)::

    {"content": [{"token": " Paris", "logprob": -0.03, "bytes": [32, 80, ...],
                  "top_logprobs": [{"token": " Paris", "logprob": -0.03, "bytes": [...]}, ...]}],
     "refusal": None}

Completions, the legacy format (``choices[].logprobs``)::

    {"tokens": [...], "token_logprobs": [...], "top_logprobs": [{token: logprob}, ...],
     "text_offset": [...]}

With ``echo`` the prompt's tokens come first; the first prompt token has no log-probability (``None``,
as its ``top_logprobs`` entry). ``text_offset`` is each token's character offset in the returned text,
counted as vLLM does: the running sum of the tokens' own text lengths. The values are log-probabilities
of the raw model distribution (see :mod:`genlab.generation.logprobs`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from genlab.generation.logprobs import TokenLogprob
from genlab.serving.backend import ChoiceResult, GenerationResult, TextDelta

Pieces = Callable[[list[int]], list[tuple[str, bytes]]]  # token ids -> (text, bytes) of each token alone


def _lookup(pieces: Pieces, entries: Sequence[TokenLogprob | None], extra: Sequence[int] = ()) -> dict[int, tuple[str, bytes]]:
    ids = {*extra}
    for entry in entries:
        if entry is not None:
            ids.add(entry.token)
            ids.update(token for token, _ in entry.top)
    ordered = sorted(ids)
    return dict(zip(ordered, pieces(ordered), strict=True)) if ordered else {}


def chat_logprobs(entries: Sequence[TokenLogprob], pieces: Pieces) -> dict[str, Any]:
    """OpenAI's chat ``logprobs`` object for these tokens."""
    known = _lookup(pieces, entries)

    def item(token: int, logprob: float) -> dict[str, Any]:
        text, raw = known[token]
        return {"token": text, "logprob": logprob, "bytes": list(raw)}

    content = [
        {**item(entry.token, entry.logprob), "top_logprobs": [item(token, value) for token, value in entry.top]}
        for entry in entries
    ]
    return {"content": content, "refusal": None}


def completion_logprobs(
    entries: Sequence[TokenLogprob | None], pieces: Pieces, *, first_ids: Sequence[int] = (), start: int = 0
) -> dict[str, Any]:
    """The legacy completions ``logprobs`` object; ``first_ids``: tokens of ``None`` entries, in order.

    ``start``: the character offset of the first token (a stream continues where its last chunk ended).
    """
    known = _lookup(pieces, entries, first_ids)
    unscored = iter(first_ids)
    tokens: list[str] = []
    token_logprobs: list[float | None] = []
    top_logprobs: list[dict[str, float] | None] = []
    text_offset: list[int] = []
    offset = start
    for entry in entries:
        token = next(unscored) if entry is None else entry.token
        text = known[token][0]
        tokens.append(text)
        text_offset.append(offset)
        offset += len(text)
        token_logprobs.append(None if entry is None else entry.logprob)
        top_logprobs.append(None if entry is None else {known[t][0]: value for t, value in entry.top})
    return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top_logprobs, "text_offset": text_offset}


def text_length(logprobs: dict[str, Any]) -> int:
    """Characters the tokens of a legacy ``logprobs`` object cover (where the next chunk's offsets start)."""
    offsets = logprobs["text_offset"]
    return offsets[-1] + len(logprobs["tokens"][-1]) if offsets else 0


def echoed_choice(
    prompt: str | list[int], result: GenerationResult, choice: ChoiceResult, echo: bool, pieces: Pieces,
    detokenize: Callable[..., str] | None,
) -> tuple[str, dict[str, Any] | None]:
    """A completion choice's text (after the echoed prompt, with ``echo``) and its legacy ``logprobs`` (or None).

    ``detokenize(ids, skip_special_tokens=False)`` gives the echoed text of a token-id prompt.
    """
    if not echo:
        return choice.text, None if choice.logprobs is None else completion_logprobs(choice.logprobs, pieces)
    echoed = prompt if isinstance(prompt, str) else detokenize(prompt, skip_special_tokens=False)  # type: ignore[misc]
    if choice.logprobs is None or result.prompt_logprobs is None:
        return echoed + choice.text, None
    entries = [*result.prompt_logprobs, *choice.logprobs]
    unscored = [result.prompt_ids[j] for j, entry in enumerate(result.prompt_logprobs) if entry is None]
    return echoed + choice.text, completion_logprobs(entries, pieces, first_ids=unscored)


class StreamedLogprobs:
    """The ``logprobs`` object of each streamed delta; completions' ``text_offset`` runs on across chunks."""

    def __init__(self, chat: bool, pieces: Pieces) -> None:
        self.chat = chat
        self.pieces = pieces
        self.offsets: dict[int, int] = {}  # per choice index: where the next chunk's offsets start

    def __call__(self, index: int, delta: TextDelta) -> dict[str, Any] | None:
        if not delta.logprobs:
            return None
        if self.chat:
            return chat_logprobs(delta.logprobs, self.pieces)
        body = completion_logprobs(delta.logprobs, self.pieces, start=self.offsets.get(index, 0))
        self.offsets[index] = text_length(body) or self.offsets.get(index, 0)
        return body
