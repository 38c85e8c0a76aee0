"""The provider interface every application (RAG, agents) talks to, and a scripted fake for tests.

A provider turns a prompt (or chat messages) into text and texts into embeddings. Applications take
a :class:`Provider` and never care whether it is genlab's local engine, an OpenAI-compatible HTTP
endpoint (vLLM, Ollama, OpenAI, ``genlab serve``) or :class:`ScriptedProvider`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

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
