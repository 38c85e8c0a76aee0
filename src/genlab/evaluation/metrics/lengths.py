"""Length statistics of generated texts: mean, median, min and max, in words and optionally tokens.

Words are whitespace-separated pieces (``str.split()``), so punctuation sticks to its word.
Tokens are counted with the given tokenizer *without* special tokens (no BOS/EOS), i.e. the length
of the text itself as the model sees it. Lengths catch what overlap scores hide: a model that
rambles, or one that stops after two words.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from genlab.errors import InvalidValueError


def _summary(prefix: str, lengths: list[int]) -> dict[str, float]:
    return {
        f"{prefix}_mean": statistics.fmean(lengths),
        f"{prefix}_median": float(statistics.median(lengths)),
        f"{prefix}_min": float(min(lengths)),
        f"{prefix}_max": float(max(lengths)),
    }


def length_stats(texts: Sequence[str], tokenizer: Any | None = None) -> dict[str, float]:
    """``length_words_{mean,median,min,max}``, plus ``length_tokens_*`` when a tokenizer is given."""
    if not texts:
        raise InvalidValueError("length statistics of an empty set of texts are undefined")
    stats = _summary("length_words", [len(text.split()) for text in texts])
    if tokenizer is not None:
        encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        stats.update(_summary("length_tokens", [len(ids) for ids in encoded]))
    return stats
