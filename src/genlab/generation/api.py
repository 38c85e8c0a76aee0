"""``genlab.generate(...)``: the one-call Python entry point over the engine."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from genlab.generation.engine import Completion, GenerationEngine
from genlab.generation.settings import GenerationSettings
from genlab.models.load import LoadedModel, load_model


@functools.lru_cache(maxsize=2)
def _engine_for(name: str, batch_size: int) -> GenerationEngine:
    return GenerationEngine(load_model(name), batch_size=batch_size)


def engine_for(model: str | LoadedModel, batch_size: int = 8) -> GenerationEngine:
    """An engine for a model name (loaded once per process and kept) or an already loaded model."""
    if isinstance(model, LoadedModel):
        return GenerationEngine(model, batch_size=batch_size)
    return _engine_for(model, batch_size)


def generate(
    model: str | LoadedModel,
    prompt: str | Sequence[str],
    *,
    chat: bool = True,
    batch_size: int = 8,
    **settings: Any,
) -> Completion | list[Completion]:
    """Generate for one prompt (returns a Completion) or several (returns a list), e.g.
    ``genlab.generate("smollm2-135m-instruct", "Summarise: ...", max_new_tokens=60, temperature=0)``.
    """
    engine = engine_for(model, batch_size)
    completions = engine.generate(prompt, GenerationSettings(**settings), chat=chat)
    return completions[0] if isinstance(prompt, str) else completions
