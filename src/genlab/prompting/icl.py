"""In-context learning: zero-, one- and few-shot prompts built from a dataset.

A k-shot prompt puts k solved examples (input and target) before the query, so the model infers the
task from the pattern without any weight update (Brown et al. 2020, "Language Models are Few-Shot
Learners", arXiv:2005.14165). The examples come from a pool, chosen by:

- ``first``: the pool's order;
- ``random``: a seeded sample, reproducible per query (``random.Random(seed + crc32(query.id))``);
- ``similar``: the pool examples nearest the query by sentence embedding (Liu et al. 2022, "What
  Makes Good In-Context Examples for GPT-3?", arXiv:2101.06804), most similar first. With
  normalised embeddings the cosine similarity is a dot product: ``cos(q, e) = q . e``.

The query itself (same id or same input text) is never shown as one of its own examples. For a chat
model the examples become earlier turns of a conversation (the example's zero-shot prompt as the
user's message, its target as the assistant's answer), the way chat models are shown few-shot tasks.

The prompt must fit the model: ``prompt_tokens + max_new_tokens <= context_window`` for a
decoder-only model, ``prompt_tokens <= context_window`` for an encoder-decoder (its output does not
share the encoder's window). Examples are dropped from the end, one at a time, until it fits; if
even the zero-shot prompt does not fit, :class:`PromptTooLongError` says so. The input is never
truncated.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from genlab.data.example import Example
from genlab.errors import InvalidValueError, PromptTooLongError
from genlab.prompting.chat import count_tokens, format_chat, has_chat_template
from genlab.prompting.templates import ALWAYS_GIVEN, PromptTemplate

Selection = Literal["first", "random", "similar"]
SELECTIONS: tuple[str, ...] = get_args(Selection)


class ExampleSelector:
    """Choose the solved examples shown before a query, from a fixed pool."""

    def __init__(
        self, pool: Sequence[Example], selection: Selection = "first", seed: int = 0, embedder: Any | None = None
    ) -> None:
        if selection not in SELECTIONS:
            raise InvalidValueError(f"selection={selection!r} is not allowed: choose one of {', '.join(SELECTIONS)}.")
        unsolved = next((example for example in pool if example.target is None), None)
        if unsolved is not None:
            raise InvalidValueError(
                f"example {unsolved.id!r} in the pool has no target, so it cannot be shown as a solved example."
            )
        self.pool = list(pool)
        self.selection = selection
        self.seed = seed
        self._embedder = embedder
        self._vectors: Any = None  # (len(pool), dim) numpy array of normalised embeddings
        if selection == "similar" and self.pool:
            if self._embedder is None:
                from genlab.models.companions import load_embedder

                self._embedder = load_embedder()
            self._vectors = self._encode([example.input for example in self.pool])

    def _encode(self, texts: list[str]) -> Any:
        import numpy as np

        return np.asarray(self._embedder.encode(texts, normalize_embeddings=True), dtype=np.float32)

    def select(self, query: Example, k: int) -> list[Example]:
        """Up to ``k`` pool examples for ``query``; fewer if the pool (without the query) is smaller."""
        if k < 0:
            raise InvalidValueError(f"k={k!r} is not allowed: the number of examples must be 0 or more.")
        candidates = [
            index
            for index, example in enumerate(self.pool)
            if example.id != query.id and example.input != query.input
        ]
        k = min(k, len(candidates))
        if k == 0:
            return []
        if self.selection == "first":
            chosen = candidates[:k]
        elif self.selection == "random":
            rng = random.Random(self.seed + zlib.crc32(query.id.encode("utf-8")))  # stable across runs
            chosen = rng.sample(candidates, k)
        else:
            import numpy as np

            scores = self._vectors[candidates] @ self._encode([query.input])[0]  # (len(candidates),)
            order = np.argsort(-scores, kind="stable")[:k]  # ties keep the pool's order
            chosen = [candidates[int(i)] for i in order]
        return [self.pool[index] for index in chosen]


@dataclass
class BuiltPrompt:
    text: str  # what the model reads: with chat, the whole formatted conversation (pass preformatted=True)
    examples: list[Example]  # the examples shown, in prompt order
    prompt_tokens: int  # what the model reads, counted as the engine counts (chat-formatted if chat)
    dropped_examples: int  # selected examples left out so the prompt fits the context window
    chat: bool = False  # True: ``text`` is a chat-formatted conversation, examples as earlier turns


def build_prompt(
    template: PromptTemplate,
    query: Example,
    selector: ExampleSelector | None,
    shots: int,
    *,
    tokenizer: Any,
    context_window: int,
    max_new_tokens: int,
    chat: bool = False,
    is_encoder_decoder: bool = False,
    variables: Mapping[str, Any] | None = None,
) -> BuiltPrompt:
    """A ``shots``-shot prompt for ``query`` that fits ``context_window`` (see the module docstring).

    ``chat=True`` (with a tokenizer that has a chat template) builds a conversation: each example a
    user turn and an assistant answer, the query the last user turn; ``text`` is then formatted;
    ``variables`` are the template's own (``target_language=...``). For a loaded model pass
    ``tokenizer=loaded.tokenizer, context_window=loaded.context_window,
    is_encoder_decoder=loaded.is_encoder_decoder``.
    """
    if shots < 0:
        raise InvalidValueError(f"shots={shots!r} is not allowed: the number of examples must be 0 or more.")
    if context_window < 1:
        raise InvalidValueError(f"context_window={context_window!r} is not allowed: it must be at least 1.")
    if max_new_tokens < 0:
        raise InvalidValueError(f"max_new_tokens={max_new_tokens!r} is not allowed: it must be 0 or more.")
    if shots > 0 and selector is None:
        raise InvalidValueError(f"shots={shots} is not allowed without an example selector: give one, or use 0.")
    if shots > 0 and "examples" not in template.variables:
        raise InvalidValueError(
            f"shots={shots} is not allowed: template {template.name!r} never shows its examples, so use 0."
        )
    extra = dict(variables or {})
    reserved = sorted(ALWAYS_GIVEN & set(extra))
    if reserved:
        raise InvalidValueError(f"variables may not set {reserved[0]!r}: build_prompt fills it from the query.")
    use_chat = chat and has_chat_template(tokenizer)

    def measure(shown: list[Example]) -> tuple[str, int]:
        if use_chat:
            # A chat model sees each solved example as a turn of its own: the example's input as a
            # user message (the zero-shot prompt) and its target as the assistant's answer.
            turns: list[dict[str, str]] = []
            for example in shown:
                turns.append({"role": "user", "content": template.render(**extra, input=example.input, examples=[])})
                turns.append({"role": "assistant", "content": example.target or ""})
            turns.append({"role": "user", "content": template.render(**extra, input=query.input, examples=[])})
            text = format_chat(tokenizer, turns)
            return text, count_tokens(tokenizer, text, chat_formatted=True)
        text = template.render(**extra, input=query.input, examples=shown)
        return text, count_tokens(tokenizer, text, chat_formatted=False)

    budget = context_window if is_encoder_decoder else context_window - max_new_tokens
    selected = selector.select(query, shots) if selector is not None and shots > 0 else []
    shown = list(selected)
    text, tokens = measure(shown)
    while tokens > budget and shown:
        shown.pop()  # the last example is the least wanted: "similar" orders nearest first
        text, tokens = measure(shown)
    if tokens > budget:
        label = f"the prompt for example {query.id!r}"
        if is_encoder_decoder:
            raise PromptTooLongError(
                f"{label} has {tokens} tokens, more than the encoder's window of {context_window} tokens."
            )
        raise PromptTooLongError(
            f"{label} has {tokens} tokens and max_new_tokens is {max_new_tokens}: {tokens} + {max_new_tokens} "
            f"exceeds the model's context window of {context_window} tokens."
        )
    return BuiltPrompt(text, shown, tokens, len(selected) - len(shown), chat=use_chat)
