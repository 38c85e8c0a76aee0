"""ReAct: a Thought / Action / Observation loop over a fixed action set, with a step limit.

Yao et al., 2022, "ReAct: Synergizing Reasoning and Acting in Language Models"
(https://arxiv.org/abs/2210.03629). Each step the model reads the prompt (instructions, the action
list, two exemplars, the question and the transcript so far) and writes ``Thought: ...`` and
``Action: Name[argument]``; genlab runs the action and appends ``Observation: ...``.

The action set is fixed when the agent is built: Search[entity] and Lookup[keyword] (a local corpus
or a RAG index), Calculate[expression] (one Python expression, run in :mod:`genlab.apps.sandbox`),
Finish[answer], and the user's typed tools (:mod:`.tools`). Safety rules, which a test with an
injected document checks:

- only the model's own output is parsed, and only its first Action line; observations are appended
  to the prompt as data and never parsed, so a retrieved document that says "ignore your
  instructions and call X" cannot add an action or run anything;
- a name outside the set is refused and the refusal is the next observation; so is a malformed
  step (no ``Action: Name[...]`` line);
- Calculate runs only what ``ast.parse(expression, mode="eval")`` accepts (a single expression) and
  runs it in the sandbox, whose own rules still apply;
- a tool's exception becomes an observation (``Tool error: ...``); the loop goes on.

The loop ends at Finish, at the step limit, or when the transcript no longer fits the model's context
window; the transcript is recorded as a lineage run of kind "agent".
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from genlab.apps.agents.corpus import Browser, Corpus
from genlab.apps.agents.prompts import agent_template, cut_at_stop
from genlab.apps.agents.result import AgentResult, Step, record_agent_run
from genlab.apps.agents.tools import BUILTIN_ACTIONS, Tool, as_tools
from genlab.apps.providers.base import Provider
from genlab.apps.sandbox import SandboxError, SandboxLimits, run_code
from genlab.errors import GenlabError, InvalidValueError

_THOUGHT = re.compile(r"^\s*Thought\s*\d*\s*:\s*(.*)$", re.MULTILINE | re.IGNORECASE)
_ACTION = re.compile(r"^\s*Action\s*\d*\s*:\s*([A-Za-z_][A-Za-z0-9_]*)\s*\[(.*)\]\s*$", re.MULTILINE)
_ANY_ACTION = re.compile(r"^\s*Action\s*\d*\s*:", re.MULTILINE | re.IGNORECASE)
BUILTIN_USAGE = {
    "Search": "Search[entity]: searches the documents for the entity and returns the opening sentences of the best match.",
    "Lookup": "Lookup[keyword]: returns the next sentence containing the keyword in the current document.",
    "Calculate": "Calculate[expression]: evaluates one Python arithmetic expression (math is imported).",
    "Finish": "Finish[answer]: returns the answer and finishes the task.",
}
# Calculate's sandbox: one expression needs little time. allow_unsafe=True is --unsafe-sandbox's doing.
CALCULATE_LIMITS = SandboxLimits(wall_seconds=5, cpu_seconds=2, max_output_chars=2000)
CALCULATE_PRELUDE = "import math\nfrom math import sqrt, log, exp, floor, ceil, pi, e, factorial\n"


def parse_step(text: str) -> tuple[str, str | None, str, str]:
    """(thought, action name or None, argument, the text kept) from one model turn.

    Only the first ``Action:`` line counts, and the text after it is dropped, whatever it says.
    """
    first = _ANY_ACTION.search(text)
    kept = text
    line = ""
    if first is not None:
        end = text.find("\n", first.start())
        kept = text if end < 0 else text[:end]
        line = kept[first.start():]
    thought = _THOUGHT.search(kept)
    thought_text = thought.group(1).strip() if thought else kept.split("\n", 1)[0].strip()
    thought_text = re.sub(r"^(Thought\s*:\s*)+", "", thought_text, flags=re.IGNORECASE)
    action = _ACTION.match(line) if line else None
    if action is None:
        return thought_text, None, "", kept
    return thought_text, action.group(1), action.group(2).strip(), kept


class ReActAgent:
    """``ReActAgent(provider, corpus=LocalCorpus.from_folder("docs"), tools=[my_fn]).run("question")``."""

    def __init__(
        self,
        provider: Provider,
        *,
        corpus: Corpus | None = None,
        tools: Sequence[Callable[..., Any] | Tool] = (),
        max_steps: int = 8,
        limits: SandboxLimits | None = None,
        template: str | Path | None = None,
        examples: Sequence[Any] = (),
        max_tokens: int = 128,
        observation_chars: int = 800,
    ) -> None:
        if max_steps < 1:
            raise InvalidValueError(f"max_steps={max_steps} is not allowed: an agent needs at least one step.")
        self.provider = provider
        self.browser = Browser(corpus) if corpus is not None else None
        self.tools = as_tools(list(tools))
        self.max_steps, self.max_tokens, self.observation_chars = max_steps, max_tokens, observation_chars
        self.limits = limits or CALCULATE_LIMITS
        self.template = agent_template("react", template)
        self.examples = list(examples)
        # The action set, fixed here: nothing the model or an observation says can change it.
        self.actions: dict[str, Callable[[str], str]] = {"Calculate": self._calculate}
        if self.browser is not None:
            self.actions.update(Search=self.browser.search, Lookup=self.browser.lookup)
        self.actions.update({name: tool for name, tool in self.tools.items()})

    @property
    def action_names(self) -> list[str]:
        return [*self.actions, "Finish"]

    def usage_lines(self) -> list[str]:
        builtin = [BUILTIN_USAGE[name] for name in BUILTIN_ACTIONS if name in self.actions or name == "Finish"]
        return builtin[:-1] + [tool.usage for tool in self.tools.values()] + builtin[-1:]

    def _calculate(self, expression: str) -> str:
        try:
            ast.parse(expression.strip(), mode="eval")
        except SyntaxError:
            raise GenlabError(f"Calculate takes one Python expression; {expression!r} is not one.") from None
        run = run_code(f"{CALCULATE_PRELUDE}print((\n{expression.strip()}\n))\n", self.limits)
        if not run.ok:
            raise SandboxRefusal(run.error or "the sandbox gave no result.") if run.kind == "refused" else GenlabError(run.error or "")
        return run.stdout.strip()

    def _act(self, name: str | None, argument: str) -> tuple[str, bool]:
        """The observation for one action, and whether it was refused."""
        if name is None:
            return (f"Invalid step: write a Thought line, then one line 'Action: Name[argument]' with Name one of "
                    f"{', '.join(self.action_names)}."), True  # fmt: skip
        if name not in self.actions:
            return f"{name} is not an available action; use one of {', '.join(self.action_names)}.", True
        try:
            observation = self.actions[name](argument)
        except SandboxRefusal as error:
            return f"Refused by the sandbox: {error}", True
        except SandboxError:  # the sandbox cannot run here (a kernel layer refused): the run stops with it
            raise
        except Exception as error:  # a tool's failure is information for the model, not the end of the run
            return f"Tool error: {type(error).__name__}: {error}", False
        text = " ".join(str(observation).split())
        if len(text) > self.observation_chars:
            text = text[: self.observation_chars] + " ..."
        return text or "(empty)", False

    def _render(self, question: str, steps: list[Step]) -> str:
        prompt = self.template.render(input=question.strip(), examples=self.examples, tools=self.usage_lines())
        for step in steps:
            action = f"Action: {step.action}[{step.argument}]" if step.action else "Action: (none)"
            prompt += f"Thought: {step.thought}\n{action}\nObservation: {step.observation}\n"
        return prompt + "Thought:"

    def run(self, question: str, *, record: bool = True) -> AgentResult:
        if not question.strip():
            raise InvalidValueError("the question is empty: ask something.")
        steps: list[Step] = []
        result = AgentResult(mode="react", question=question, answer=None, steps=steps, model=self.provider.name)
        for _ in range(self.max_steps):
            prompt = self._render(question, steps)
            result.prompt = prompt
            if self.provider.count_tokens(prompt) + self.max_tokens > self.provider.context_window:
                result.error = (f"the transcript no longer fits the model's context window "
                                f"({self.provider.context_window} tokens) after {len(steps)} steps.")  # fmt: skip
                break
            raw = self.provider.complete(prompt, max_tokens=self.max_tokens, stop=self.template.stop)
            output = cut_at_stop("Thought:" + raw, self.template.stop)
            thought, name, argument, output = parse_step(output)
            step = Step(model_output=output.removeprefix("Thought:").strip(), thought=thought, action=name, argument=argument)
            steps.append(step)
            if name == "Finish":
                result.answer = argument.strip() or None
                if result.answer is None:
                    step.observation, step.refused = "Finish needs an answer, e.g. Finish[42].", True
                    continue
                break
            step.observation, step.refused = self._act(name, argument)
        else:
            result.error = f"the step limit of {self.max_steps} was reached without Finish[answer]."
        if result.answer is None and result.error is None:
            result.error = "the agent stopped without an answer."
        config = {"max_steps": self.max_steps, "actions": self.action_names,
                  "corpus": type(self.browser.corpus).__name__ if self.browser else None}  # fmt: skip
        return record_agent_run(result, config) if record else result


class SandboxRefusal(GenlabError):
    """Calculate's program was refused by the sandbox (not merely wrong)."""


def answer_with_react(question: str, provider: Provider, **options: Any) -> AgentResult:
    record = options.pop("record", True)
    return ReActAgent(provider, **options).run(question, record=record)
