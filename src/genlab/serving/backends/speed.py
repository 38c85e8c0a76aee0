"""Single-stream speed of a serving backend: tokens per second for one request at a time, greedy.

``bench/serve.py`` calls :func:`single_stream_tokens_per_second` for every backend available on the
machine; :func:`measure_single_stream` gives the detail (time to the first token, decode rate).
The time runs from ``submit`` to the result, as a client sees it: prompt processing included.

Figures measured with it (llama.cpp against genlab's engine on the default model) are in the
docstring of :mod:`genlab.serving.backends.llamacpp`.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from genlab.generation.settings import GenerationSettings
from genlab.serving.backend import Backend


@dataclass(frozen=True)
class StreamSpeed:
    backend: str
    completion_tokens: int
    seconds: float  # submit -> result
    first_token_seconds: float  # submit -> first text delta

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def decode_tokens_per_second(self) -> float:
        """After the first token: the decoding rate alone, without the prompt's processing."""
        decoding = self.seconds - self.first_token_seconds
        return (self.completion_tokens - 1) / decoding if decoding > 0 and self.completion_tokens > 1 else 0.0


def measure_single_stream(
    backend: Backend,
    prompt: str,
    max_tokens: int = 128,
    *,
    model_id: str | None = None,
    chat: bool = True,
    repeats: int = 3,
) -> StreamSpeed:
    """The median of ``repeats`` greedy runs of one request, after loading and one short warm-up request."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    model_id = model_id or backend.models()[0]
    text = backend.format_chat([{"role": "user", "content": prompt}]) if chat else prompt
    settings = GenerationSettings(max_new_tokens=max_tokens, temperature=0.0)
    backend.load()
    backend.submit(model_id, text, settings.with_overrides(max_new_tokens=4), formatted=chat).result()
    runs = [_one_run(backend, model_id, text, settings, formatted=chat) for _ in range(repeats)]
    return min(runs, key=lambda run: abs(run.tokens_per_second - statistics.median(r.tokens_per_second for r in runs)))


def single_stream_tokens_per_second(backend: Backend, prompt: str, max_tokens: int = 128, **options: object) -> float:
    """Tokens per second of one greedy request on ``backend`` (see :func:`measure_single_stream`)."""
    return measure_single_stream(backend, prompt, max_tokens, **options).tokens_per_second  # type: ignore[arg-type]


def _one_run(backend: Backend, model_id: str, text: str, settings: GenerationSettings, *, formatted: bool) -> StreamSpeed:
    start = time.perf_counter()
    handle = backend.submit(model_id, text, settings, formatted=formatted)
    first = None
    for _ in handle:
        if first is None:
            first = time.perf_counter() - start
    result = handle.result()
    seconds = time.perf_counter() - start
    return StreamSpeed(backend.name, result.completion_tokens, seconds, first if first is not None else seconds)
