"""Continued pre-training on raw text: documents packed into blocks of equal length.

Language-model pre-training reads a stream of documents cut into fixed-length blocks rather than one
padded document per row, so no compute goes to padding (Brown et al. 2020, "Language Models are
Few-Shot Learners", arXiv:2005.14165, section 2.3; Raffel et al. 2020, arXiv:1910.10683, "packing").
Every document is followed by the end-of-sequence token, so a block that spans two documents shows
where one ends, and the model learns to end a text. The loss is on every token:

    L = -(1 / (B - 1)) * sum_{t=2..B} log p(x_t | x_<t),   labels == input_ids (the model shifts them)

The last, partial block is dropped, so every row is exactly ``block_size`` tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from genlab.errors import InvalidValueError
from genlab.tuning.features import FeatureSet


def pack_texts(texts: Sequence[str], tokenizer: Any, *, block_size: int = 256) -> FeatureSet:
    """``texts`` tokenised, each followed by eos, joined and cut into rows of ``block_size`` tokens.

    Rows are named ``block:0``, ``block:1``, ... (a block is not one source row). Empty texts are
    skipped. Raises :class:`InvalidValueError` if the texts hold fewer tokens than one block.
    """
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise InvalidValueError(f"block_size={block_size!r} is not allowed: it must be a whole number, 1 or more.")
    if tokenizer.eos_token_id is None:
        raise InvalidValueError("the tokenizer has no end-of-sequence token to put between packed documents.")
    stream = _token_stream([text for text in texts if text.strip()], tokenizer)
    if len(stream) < block_size:
        raise InvalidValueError(
            f"the texts hold {len(stream)} tokens, fewer than one block of block_size={block_size}; "
            "give more text or a smaller block_size."
        )
    packed = FeatureSet()
    for number, start in enumerate(range(0, len(stream) - block_size + 1, block_size)):
        block = stream[start : start + block_size]
        feature = {"input_ids": block, "attention_mask": [1] * block_size, "labels": list(block)}
        packed.append(f"block:{number}", feature, 0, block_size)
    return packed


def _token_stream(texts: list[str], tokenizer: Any) -> list[int]:
    """All documents' ids, eos after each; no other special tokens (a block may start mid-document)."""
    eos = int(tokenizer.eos_token_id)
    stream: list[int] = []
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []:
        stream.extend(ids)
        stream.append(eos)
    return stream
