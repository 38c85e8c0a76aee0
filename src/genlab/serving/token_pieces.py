"""The text and the exact bytes of single tokens, as log-probabilities show them.

OpenAI's chat log-probabilities give each token as text and as its UTF-8 ``bytes`` (a token may hold
half of a multi-byte character, whose text alone is ``"\\ufffd"``). The bytes come from the
tokenizer's own pieces: byte-level BPE (GPT-2, SmolLM2, Llama 3) maps each byte to one printable
character, which is mapped back; SentencePiece byte-fallback pieces are ``<0xNN>``; any other piece
is the UTF-8 of its decoded text.
"""

from __future__ import annotations

import re
from typing import Any

from transformers.convert_slow_tokenizer import bytes_to_unicode

_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


class TokenPieces:
    """``pieces(ids)`` -> [(text of the token alone, its bytes)] for ``tokenizer``; not thread-safe (lock outside)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        decoder = type(getattr(backend, "decoder", None)).__name__
        self._byte_of = {char: byte for byte, char in bytes_to_unicode().items()} if decoder == "ByteLevel" else None
        self._special = set(getattr(tokenizer, "all_special_ids", []) or [])
        self._known: dict[int, tuple[str, bytes]] = {}  # token id -> its text and bytes (fixed: at most the vocabulary)

    def __call__(self, ids: list[int]) -> list[tuple[str, bytes]]:
        new = [token for token in dict.fromkeys(ids) if token not in self._known]
        if new:
            for token, piece in zip(new, self.tokenizer.convert_ids_to_tokens(new), strict=True):
                text = self.tokenizer.decode([token], skip_special_tokens=False)
                self._known[token] = (text, self._bytes(token, piece, text))
        return [self._known[token] for token in ids]

    def _bytes(self, token: int, piece: str | None, text: str) -> bytes:
        if piece is None or token in self._special:
            return text.encode("utf-8")
        if self._byte_of is not None and all(char in self._byte_of for char in piece):
            return bytes(self._byte_of[char] for char in piece)
        found = _BYTE_PIECE.fullmatch(piece)
        if found is not None:
            return bytes([int(found.group(1), 16)])
        return text.encode("utf-8")
