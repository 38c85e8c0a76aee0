"""Tool calling in chat completions: the tools a request offers, the grammar of a forced call, and the answer parsed into ``tool_calls``.

A call is written as the generic tool prompt asks (:mod:`genlab.serving.tool_prompt`; Qwen2.5/3 and
Hermes models write the same)::

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

one block per call. What ``tool_choice`` does:

- ``"none"``: the tools are not shown to the model and its text is the answer;
- ``"auto"`` (the default when tools are given): the model decides; each well-formed block naming an
  offered function becomes a call (its arguments are the model's, not constrained);
- ``"required"``: the output is constrained (xgrammar, :mod:`genlab.generation.constrained`) to
  blocks separated by a newline, at least one, each naming an offered function with arguments valid
  against its ``parameters`` schema; a single block when ``parallel_tool_calls`` is false;
- ``{"type": "function", "function": {"name": N}}``: exactly one block calling ``N``, constrained.

``parallel_tool_calls: false`` keeps the first call of an ``auto`` answer. ``finish_reason`` is
``"tool_calls"`` when the answer holds calls and ended by itself; an answer cut by ``max_tokens`` says
``"length"``, and a call it cut is not parsed (its text stays in ``content``). Text before the first
block is the message's ``content`` (None when there is none).

Streaming sends OpenAI's deltas: content as it comes (holding back what could be the start of a
block), then per call one delta with its ``index``, ``id``, ``type`` and ``function.name`` (and
empty ``arguments``), followed by one with the arguments, when its block closes.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from genlab.generation.constrained import ConstraintFactory, Grammars
from genlab.serving.tool_prompt import CALL_CLOSE, CALL_OPEN

EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}  # OpenAI: no parameters given = none taken
CALL_SEPARATOR = "\n"


@dataclass(frozen=True)
class ToolPlan:
    """The offered functions (OpenAI's ``function`` objects) and how the answer may use them."""

    functions: tuple[dict[str, Any], ...]
    choice: Literal["auto", "required", "named"]
    named: str | None = None  # the function a named tool_choice forces
    parallel: bool = True

    @property
    def names(self) -> set[str]:
        return {f["name"] for f in self.functions}

    def tools(self) -> list[dict[str, Any]]:
        """The tools as OpenAI's list (what chat templates and the generic prompt read)."""
        return [{"type": "function", "function": f} for f in self.functions]

    def parameters(self, name: str) -> dict[str, Any]:
        function = next(f for f in self.functions if f["name"] == name)
        return function.get("parameters") or EMPTY_PARAMETERS


def call_grammar(plan: ToolPlan, grammars: Grammars) -> ConstraintFactory | None:
    """The constraint of a ``required`` or named tool choice (None for ``auto``); GrammarError for a bad schema."""
    if plan.choice == "auto":
        return None

    def tag(name: str) -> dict[str, Any]:
        content = {"type": "grammar", "grammar": grammars.json_schema_ebnf(plan.parameters(name), f"the parameters schema of {name!r}")}
        begin = f'{CALL_OPEN}\n{{"name": {json.dumps(name)}, "arguments": '
        return {"type": "tag", "begin": begin, "content": content, "end": f"}}\n{CALL_CLOSE}"}

    if plan.choice == "named":
        assert plan.named is not None
        form: dict[str, Any] = tag(plan.named)
        what = f"the parameters schema of function {plan.named!r}"
    else:
        form = {
            "type": "tags_with_separator", "tags": [tag(f["name"]) for f in plan.functions], "separator": CALL_SEPARATOR,
            "at_least_one": True, "stop_after_first": not plan.parallel,
        }  # fmt: skip
        what = "the parameters schemas of the tools"
    return grammars.structural_tag({"type": "structural_tag", "format": form}, what)


# --- the answer as content and calls -----------------------------------------------------------------


def _call(index: int, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "index": index, "id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)},
    }  # fmt: skip


def _parse_block(body: str, plan: ToolPlan) -> tuple[str, dict[str, Any]] | None:
    """(name, arguments) of one block's JSON, or None if it is not a call of an offered function."""
    try:
        value, _ = json.JSONDecoder().raw_decode(body.strip())
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    name, arguments = value.get("name"), value.get("arguments", value.get("parameters", {}))
    if name not in plan.names or not isinstance(arguments, dict):
        return None
    return name, arguments


def _held_back(text: str) -> int:
    """Characters at the end of ``text`` that could be the start of a call block."""
    for size in range(min(len(CALL_OPEN) - 1, len(text)), 0, -1):
        if CALL_OPEN.startswith(text[-size:]):
            return size
    return 0


@dataclass
class _Splitter:
    """One choice's text split into content and calls as it grows (see the module docstring)."""

    plan: ToolPlan
    text: str = ""
    done: int = 0  # characters of ``text`` already turned into content or calls
    calls: list[dict[str, Any]] = field(default_factory=list)

    def feed(self, more: str, *, final: bool = False) -> list[tuple[str, Any]]:
        """New ("content", text) and ("call", call) events; ``final``: the answer ended, flush what is held."""
        self.text += more
        events: list[tuple[str, Any]] = []
        while self.done < len(self.text):
            rest = self.text[self.done :]
            start = rest.find(CALL_OPEN)
            if start < 0:
                keep = 0 if final else _held_back(rest)
                self._content(events, rest[: len(rest) - keep])
                self.done += len(rest) - keep
                break
            self._content(events, rest[:start])
            end = rest.find(CALL_CLOSE, start)
            if end < 0 and not final:
                self.done += start
                break
            body = rest[start + len(CALL_OPEN) : end if end >= 0 else len(rest)]
            parsed = _parse_block(body, self.plan) if end >= 0 else None  # a cut block is not a call
            if parsed is not None and (self.plan.parallel or not self.calls):
                call = _call(len(self.calls), *parsed)
                self.calls.append(call)
                events.append(("call", call))
            elif parsed is None:
                self._content(events, rest[start : end + len(CALL_CLOSE) if end >= 0 else len(rest)])
            self.done += end + len(CALL_CLOSE) if end >= 0 else len(rest)
        return events

    def _content(self, events: list[tuple[str, Any]], text: str) -> None:
        if self.calls and not text.strip():
            return  # the newlines between blocks
        if text:
            events.append(("content", text))


def _finish(reason: str, calls: list[dict[str, Any]]) -> str:
    return "tool_calls" if calls and reason == "stop" else reason


def assistant_message(text: str, finish_reason: str, plan: ToolPlan | None) -> tuple[dict[str, Any], str]:
    """The choice's ``message`` and ``finish_reason``: with a plan, the text's calls in ``tool_calls``."""
    if plan is None:
        return {"role": "assistant", "content": text}, finish_reason
    splitter = _Splitter(plan)
    events = splitter.feed(text, final=True)
    if not splitter.calls:
        return {"role": "assistant", "content": text}, finish_reason
    content = "".join(value for kind, value in events if kind == "content").strip() or None
    calls = [{key: value for key, value in call.items() if key != "index"} for call in splitter.calls]
    return {"role": "assistant", "content": content, "tool_calls": calls}, _finish(finish_reason, calls)


class ToolStream:
    """Streamed deltas of a request with tools: each choice's text as content and ``tool_calls`` deltas."""

    def __init__(self, plan: ToolPlan) -> None:
        self.plan = plan
        self._choices: dict[int, _Splitter] = {}

    def feed(self, index: int, text: str) -> list[dict[str, Any]]:
        """The ``delta`` objects for new text of choice ``index``."""
        return self._deltas(self._splitter(index).feed(text))

    def end(self, index: int, finish_reason: str) -> tuple[list[dict[str, Any]], str]:
        """The deltas of what was held back, and the choice's finish_reason."""
        splitter = self._splitter(index)
        deltas = self._deltas(splitter.feed("", final=True))
        return deltas, _finish(finish_reason, splitter.calls)

    def _splitter(self, index: int) -> _Splitter:
        return self._choices.setdefault(index, _Splitter(self.plan))

    @staticmethod
    def _deltas(events: list[tuple[str, Any]]) -> list[dict[str, Any]]:
        deltas: list[dict[str, Any]] = []
        for kind, value in events:
            if kind == "content":
                deltas.append({"content": value})
                continue
            head = {**value, "function": {"name": value["function"]["name"], "arguments": ""}}
            deltas.append({"tool_calls": [head]})
            deltas.append({"tool_calls": [{"index": value["index"], "function": {"arguments": value["function"]["arguments"]}}]})
        return deltas
