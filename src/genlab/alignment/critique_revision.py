"""The supervised stage of Constitutional AI (Bai et al. 2022, arXiv:2212.08073, §3.1): critique, then revise.

For each red-team prompt x the model answers (y₀), is shown a principle's critique request and
critiques its own answer (c), then is shown the principle's revision request and rewrites the answer
(y₁) -- all in one conversation::

    user: x                      assistant: y₀
    user: critique_request       assistant: c
    user: revision_request       assistant: y₁

The principle is drawn at random (seeded) per prompt, as in the paper. The rows
``{prompt, response=y₁, initial=y₀, critique=c, principle}`` are a supervised dataset: fine-tuning on
(prompt → response) is the paper's SL-CAI model (``genlab finetune`` with ``input_field: prompt``,
``target_field: response``). The paper prompts a 52B model with few-shot examples of good critiques;
a 135M model critiques far less well, so read its revisions as a demonstration of the pipeline.

With a chat template the conversation goes through it; without one (a base model) it is the paper's
``Human: ... / Assistant: ...`` transcript, and generation stops at the next ``Human:``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab.alignment.constitution import Constitution
from genlab.atomic import atomic_write_text
from genlab.generation.engine import GenerationEngine
from genlab.generation.settings import GenerationSettings

TRANSCRIPT_STOP = ("\n\nHuman:",)  # a plain transcript's next turn


@dataclass(frozen=True)
class Revision:
    prompt: str
    initial: str
    critique: str
    response: str  # the revised answer
    principle: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt, "response": self.response, "initial": self.initial,
            "critique": self.critique, "principle": self.principle,
        }  # fmt: skip

    @property
    def changed(self) -> bool:
        return self.response.strip() != self.initial.strip()


def conversation_text(engine: GenerationEngine, messages: list[dict[str, str]], *, chat: bool) -> str:
    """What the model reads before its next turn: the chat template's, or a Human/Assistant transcript."""
    if chat:
        from genlab.prompting.chat import format_chat

        return format_chat(engine.loaded.tokenizer, messages, add_generation_prompt=True)
    turns = [f"{'Human' if m['role'] == 'user' else 'Assistant'}: {m['content']}" for m in messages]
    return "\n\n".join(turns) + "\n\nAssistant:"


def generate_replies(
    engine: GenerationEngine,
    conversations: Sequence[list[dict[str, str]]],
    settings: GenerationSettings,
    *,
    chat: bool,
    label: str = "generating",
    progress: bool = True,
) -> list[list[str]]:
    """The model's next turn in each conversation (``settings.num_return_sequences`` each), stripped."""
    from tqdm.auto import tqdm

    if not chat:
        settings = settings.with_overrides(stop=tuple(settings.stop) + TRANSCRIPT_STOP)
    texts = [conversation_text(engine, list(c), chat=chat) for c in conversations]
    replies: list[list[str]] = []
    step = engine.batch_size
    with (
        tqdm(total=len(texts), desc=label, unit="prompt", disable=not progress, leave=False) as bar,
        engine.hold_packed_weights(),
    ):
        for start in range(0, len(texts), step):
            batch = texts[start : start + step]
            for completion in engine.generate(batch, settings, preformatted=chat):
                replies.append([choice.text.strip() for choice in completion.choices])
            bar.update(len(batch))
    return replies


def critique_and_revise(
    engine: GenerationEngine,
    prompts: Sequence[str],
    constitution: Constitution,
    settings: GenerationSettings,
    *,
    chat: bool,
    seed: int = 0,
    progress: bool = True,
) -> list[Revision]:
    """One :class:`Revision` per prompt, in order (see the module docstring)."""
    rng = random.Random(seed)
    principles = [constitution.sample(rng) for _ in prompts]
    talks: list[list[dict[str, str]]] = [[{"role": "user", "content": prompt}] for prompt in prompts]

    def replies(label: str) -> list[str]:
        return [r[0] for r in generate_replies(engine, talks, settings, chat=chat, label=label, progress=progress)]

    initial = replies("answers")
    for talk, answer, principle in zip(talks, initial, principles, strict=True):
        talk += [{"role": "assistant", "content": answer}, {"role": "user", "content": principle.critique_request}]
    critiques = replies("critiques")
    for talk, critique, principle in zip(talks, critiques, principles, strict=True):
        talk += [{"role": "assistant", "content": critique}, {"role": "user", "content": principle.revision_request}]
    revised = replies("revisions")
    rows = zip(prompts, initial, critiques, revised, principles, strict=True)
    return [Revision(p, first, critique, second, principle.name) for p, first, critique, second, principle in rows]


def write_revisions(path: str | Path, rows: Sequence[Revision]) -> Path:
    """The supervised dataset as JSONL, written atomically."""
    return atomic_write_text(path, "".join(json.dumps(row.to_dict(), ensure_ascii=False) + "\n" for row in rows))
