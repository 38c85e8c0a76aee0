"""One interface for text generation and embeddings, over local and remote models (see :mod:`.base`).

``get_provider(spec)`` and ``get_embedder(spec)`` turn the ``--model`` / ``--embedder`` strings of the
CLI into objects:

- ``openai:MODEL`` -- MODEL behind an OpenAI-compatible endpoint (vLLM, Ollama, OpenAI, ``genlab
  serve``); base URL and key from the arguments or ``GENLAB_OPENAI_BASE_URL`` / ``GENLAB_OPENAI_API_KEY``
  (or ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``), see :mod:`.openai_compat`.
- ``hashing`` (embedders only) -- the deterministic fake embedder, for tests and quick trials.
- anything else -- a local model: a pack name, a model folder, a GGUF file (:mod:`.local`).
"""

from __future__ import annotations

from typing import Any

from genlab.apps.providers.base import (
    Embedder, HashingEmbedder, Provider, ProviderError, ScriptedProvider, word_offsets,
)

__all__ = [
    "Embedder", "HashingEmbedder", "Provider", "ProviderError", "ScriptedProvider", "get_embedder", "get_provider",
    "word_offsets",
]  # fmt: skip

REMOTE_PREFIX = "openai:"


def get_provider(spec: str, **options: Any) -> Provider:
    """A text-generation provider for a model spec (see the module docstring)."""
    if spec.startswith(REMOTE_PREFIX):
        from genlab.apps.providers.openai_compat import OpenAICompatProvider

        return OpenAICompatProvider(spec.removeprefix(REMOTE_PREFIX), **options)
    from genlab.apps.providers.local import LocalProvider

    return LocalProvider(spec, **options)


def get_embedder(spec: str | None = None, **options: Any) -> Embedder:
    """An embedder for a spec; ``None`` is genlab's default embedder pack (all-MiniLM-L6-v2)."""
    if spec is not None and spec.startswith(REMOTE_PREFIX):
        from genlab.apps.providers.openai_compat import OpenAICompatEmbedder

        return OpenAICompatEmbedder(spec.removeprefix(REMOTE_PREFIX), **options)
    if spec is not None and spec.split("-")[0] == "hashing":
        dim = spec.partition("-")[2] or "256"
        if not dim.isdigit() or int(dim) < 1:
            from genlab.errors import InvalidValueError

            raise InvalidValueError(f"embedder {spec!r} is not allowed: write hashing or hashing-DIM, e.g. hashing-256.")
        return HashingEmbedder(int(dim), name=f"hashing-{dim}")
    from genlab.apps.providers.local import LocalEmbedder

    return LocalEmbedder(spec) if spec else LocalEmbedder()
