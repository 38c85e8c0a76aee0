"""One interface for text generation and embeddings, over local and remote models (see :mod:`.base`)."""

from genlab.apps.providers.base import Provider, ProviderError, ScriptedProvider

__all__ = ["Provider", "ProviderError", "ScriptedProvider"]
