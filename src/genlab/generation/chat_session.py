"""A multi-turn conversation: history kept within the context window, answers streamed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from genlab.errors import GenlabError
from genlab.generation.api import engine_for
from genlab.generation.engine import GenerationEngine
from genlab.generation.settings import GenerationSettings
from genlab.prompting.chat import format_chat, has_chat_template, trim_history


class ChatSession:
    def __init__(self, engine: GenerationEngine, settings: GenerationSettings, system: str | None = None) -> None:
        if not has_chat_template(engine.loaded.tokenizer):
            raise GenlabError(f"{engine.loaded.name!r} has no chat template, so it cannot chat; use `genlab generate`.")
        self.engine = engine
        self.settings = settings
        self.system = system
        self.messages: list[dict[str, Any]] = []
        self.reset()

    @classmethod
    def start(cls, model: str, settings: GenerationSettings, system: str | None = None) -> ChatSession:
        return cls(engine_for(model), settings, system)

    @property
    def context_window(self) -> int:
        return self.engine.loaded.context_window

    def reset(self) -> None:
        self.messages = [{"role": "system", "content": self.system}] if self.system else []

    def send(self, text: str) -> Iterator[str]:
        """Add a user message, stream the reply, and keep it in the history."""
        tokenizer = self.engine.loaded.tokenizer
        candidate = [*self.messages, {"role": "user", "content": text}]
        kept = trim_history(tokenizer, candidate, self.context_window, self.settings.max_new_tokens)
        prompt = format_chat(tokenizer, kept)
        reply = []
        for piece in self.engine.stream(prompt, self.settings, preformatted=True):
            reply.append(piece)
            yield piece
        self.messages = [*kept, {"role": "assistant", "content": "".join(reply).strip()}]
