"""The provider interface every application (RAG, agents) talks to, and a scripted fake for tests.

A provider turns a prompt (or chat messages) into text and texts into embeddings. Applications take
a :class:`Provider` and never care whether it is genlab's local engine, an OpenAI-compatible HTTP
endpoint (vLLM, Ollama, OpenAI, ``genlab serve``) or :class:`ScriptedProvider`.

An :class:`Embedder` turns texts into unit-length vectors (so a dot product is the cosine) and says
how it splits text into tokens, so that chunks are cut to fit its input window. Implementations: the
local sentence-transformers pack (:mod:`.local`), a remote ``/v1/embeddings`` (:mod:`.openai_compat`)
and :class:`HashingEmbedder`, a deterministic fake for tests.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from genlab.errors import GenlabError


class ProviderError(GenlabError):
    """A provider could not answer: unreachable endpoint, bad key, timeout, exhausted script."""


@runtime_checkable
class Provider(Protocol):
    name: str
    context_window: int  # tokens the model reads at once (prompt + answer)

    def complete(
        self, prompt: str, *, max_tokens: int = 256, stop: Sequence[str] = (), temperature: float = 0.0
    ) -> str:
        """The model's continuation of ``prompt`` (instruction models: its answer), cut at the first stop."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this model's prompt (an estimate for remote models)."""
        ...


class ScriptedProvider:
    """A fake model for tests: answers with the scripted replies in order and records every prompt."""

    def __init__(self, replies: Sequence[str], *, name: str = "scripted", context_window: int = 4096) -> None:
        self.replies = list(replies)
        self.prompts: list[str] = []
        self.name, self.context_window = name, context_window

    def complete(
        self, prompt: str, *, max_tokens: int = 256, stop: Sequence[str] = (), temperature: float = 0.0
    ) -> str:
        self.prompts.append(prompt)
        if len(self.prompts) > len(self.replies):
            raise ProviderError(f"the scripted model has only {len(self.replies)} replies; call {len(self.prompts)} asked for more.")
        reply = self.replies[len(self.prompts) - 1]
        cut = min((reply.find(s) for s in stop if s and s in reply), default=-1)
        return reply[:cut] if cut >= 0 else reply

    def count_tokens(self, text: str) -> int:
        return len(text.split())


@runtime_checkable
class Embedder(Protocol):
    name: str  # what an index records, to refuse a query embedded by another model
    dim: int  # length of every vector
    max_tokens: int  # tokens the model reads per text; longer texts are cut by the model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 vectors of unit length."""
        ...

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """(start, end) character offsets of each token of ``text``, in this model's tokenizer."""
        ...


_WORD = re.compile(r"\w+|[^\w\s]")


def word_offsets(text: str) -> list[tuple[int, int]]:
    """Character spans of words and punctuation marks: a tokenizer for fakes and remote estimates."""
    return [m.span() for m in _WORD.finditer(text)]


class HashingEmbedder:
    """A fake embedder for tests: each lower-cased word adds a signed one-hot at a hashed position.

    Deterministic and instant; texts that share words are close, others nearly orthogonal (the
    hashing trick of Weinberger et al. 2009), which is all retrieval tests need.
    """

    def __init__(self, dim: int = 256, *, name: str = "hashing-256", max_tokens: int = 512) -> None:
        self.dim, self.name, self.max_tokens = dim, name, max_tokens

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dim
                out[row, bucket] += 1.0 if digest[4] & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return word_offsets(text)
