"""Generation as a recorded run: what `genlab generate` does, importable."""

from __future__ import annotations

from collections.abc import Iterator

from genlab.generation.api import engine_for
from genlab.generation.engine import Completion
from genlab.generation.settings import GenerationSettings
from genlab.lineage import record_run


def generate_recorded(model: str, prompt: str, settings: GenerationSettings, *, chat: bool = True) -> Completion:
    config = {"model": model, "settings": settings.model_dump(), "chat": chat, "prompt_chars": len(prompt)}
    with record_run("generate", config) as run:
        engine = engine_for(model)
        if engine.loaded.path is not None:
            run.use(engine.loaded.path, "model", {"model": model})
        (completion,) = engine.generate([prompt], settings, chat=chat)
        run.log_metrics({"prompt_tokens": completion.prompt_tokens, "new_tokens": completion.new_tokens})
    return completion


def stream_recorded(model: str, prompt: str, settings: GenerationSettings, *, chat: bool = True) -> Iterator[str]:
    config = {"model": model, "settings": settings.model_dump(), "chat": chat, "stream": True}
    with record_run("generate", config) as run:
        engine = engine_for(model)
        if engine.loaded.path is not None:
            run.use(engine.loaded.path, "model", {"model": model})
        produced = 0
        for piece in engine.stream(prompt, settings, chat=chat):
            produced += len(piece)
            yield piece
        run.log_metric("new_chars", produced)
