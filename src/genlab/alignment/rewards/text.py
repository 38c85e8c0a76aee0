"""Rewards computed from the completion's text alone: ROUGE against a reference, JSON validity.

ROUGE (Lin 2004) is rouge-score's F-measure, through :func:`genlab.evaluation.metrics.rouge.rouge_per_example`:

    r(y) = F_rougeN(y, reference) = 2·P·R / (P + R),  P, R over shared n-grams (rougeL: the longest common subsequence)

so a summariser is paid for keeping the reference's content while another reward (non-toxicity)
pulls elsewhere. JSON validity is ``r(y) = 1`` when ``json.loads`` accepts the completion (stripped,
and with one surrounding Markdown code fence removed, as chat models often write), else 0. Both
are a few lines over maintained libraries (rouge-score, the standard ``json``); no library ships
them as trl reward functions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Literal

from genlab.errors import GenlabError
from genlab.evaluation.metrics.rouge import rouge_per_example

RougeName = Literal["rouge1", "rouge2", "rougeL"]
ROUGE_NAMES: tuple[str, ...] = ("rouge1", "rouge2", "rougeL")
REFERENCE_COLUMN = "reference"  # the dataset column GRPO and RLOO fill with each prompt's reference answer
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n(.*)\n\s*```$", re.DOTALL)


class MissingReferenceError(GenlabError):
    """A ROUGE reward used on data that gives no reference answer."""


class RougeReward:
    """ROUGE F-measure (``name``: rouge1, rouge2 or rougeL) of each completion against its row's reference."""

    def __init__(self, name: RougeName = "rouge1") -> None:
        if name not in ROUGE_NAMES:
            raise ValueError(f"name={name!r}: expected one of {', '.join(ROUGE_NAMES)}")
        self.name = name
        self.__name__ = name  # trl logs each reward under its function's name

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float]:
        references = columns.get(REFERENCE_COLUMN)
        if references is None or any(not isinstance(r, str) or not r.strip() for r in references):
            raise MissingReferenceError(
                f"the {self.name} reward needs a reference answer for every prompt: "
                "give data.target_field a column every row fills."
            )
        texts = [completion_text(completion) for completion in completions]
        return [rouge_per_example(text, reference)[self.name] for text, reference in zip(texts, references, strict=True)]


def completion_text(completion: Any) -> str:
    """A trl completion as text: a string, or a conversation whose last message is the answer."""
    return completion if isinstance(completion, str) else str(completion[-1]["content"])


def is_json(text: str) -> bool:
    """Whether ``text`` (stripped; one surrounding Markdown code fence removed) is one JSON value."""
    text = text.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    if not text:
        return False
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def json_valid(prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float]:
    """1.0 for each completion that is valid JSON, 0.0 otherwise (trl's reward interface)."""
    return [1.0 if is_json(completion_text(completion)) else 0.0 for completion in completions]


json_valid.__name__ = "json-valid"
