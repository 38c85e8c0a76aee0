"""Chain-of-thought prompting: worked exemplars that reason step by step, the answer after "The answer is".

Wei et al., 2022, "Chain-of-Thought Prompting Elicits Reasoning in Large Language Models"
(https://arxiv.org/abs/2201.11903). The builtin exemplars (``templates/cot.jinja``) are three of the
paper's GSM8K exemplars; ``examples`` adds the caller's own (``.input`` question, ``.target`` worked
answer ending in "The answer is ..."). The model's reasoning is kept; the answer is the text after
the first "The answer is", up to the end of that sentence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genlab.apps.agents.prompts import agent_template, cut_at_stop
from genlab.apps.agents.result import AgentResult, Step, record_agent_run
from genlab.apps.providers.base import Provider

# "The answer is 11." / "the answer is: $18" -> "11" / "$18" (a trailing full stop is not the answer).
_ANSWER = re.compile(r"the answer is\s*:?\s*(.+?)(?:\.(?:\s|$)|\n|$)", re.IGNORECASE)


def extract_answer(text: str) -> str | None:
    """The answer after the first "The answer is" in ``text``, or None."""
    match = _ANSWER.search(text)
    if not match:
        return None
    answer = match.group(1).strip().strip("*").strip()
    return answer or None


def answer_with_cot(
    question: str,
    provider: Provider,
    *,
    examples: Sequence[Any] = (),
    template: str | Path | None = None,
    max_tokens: int = 192,
    record: bool = True,
) -> AgentResult:
    """Ask ``provider`` to reason step by step; ``result.answer`` is None when it never says "The answer is"."""
    prompt_template = agent_template("cot", template)
    prompt = prompt_template.render(input=question.strip(), examples=list(examples))
    reasoning = cut_at_stop(provider.complete(prompt, max_tokens=max_tokens, stop=prompt_template.stop), prompt_template.stop)
    answer = extract_answer(reasoning)
    result = AgentResult(
        mode="cot", question=question, answer=answer, prompt=prompt, model=provider.name,
        steps=[Step(model_output=reasoning, thought=reasoning.strip())],
        error=None if answer else "the model's reasoning has no \"The answer is ...\" sentence.",
    )  # fmt: skip
    return record_agent_run(result, {"max_tokens": max_tokens}) if record else result
