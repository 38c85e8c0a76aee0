"""What a chat request's answer must follow: ``response_format``, vLLM's ``structured_outputs``, tool choices.

Each becomes one grammar for xgrammar (:mod:`genlab.generation.constrained`), compiled while the
request is checked and given to every row of the request, which masks its own next-token scores in
the shared dynamic batch:

- ``response_format: {"type": "json_object"}`` -> any JSON object;
- ``response_format: {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`` -> a JSON
  value valid against ``schema`` (with ``strict`` true or false alike: the output always follows it);
- ``structured_outputs: {"choice": [...]}`` -> exactly one of the strings; ``{"regex": ...}`` -> text
  matching it; ``{"json": schema}`` -> as ``json_schema`` (vLLM's request fields since v0.12);
- ``tools`` with ``tool_choice`` ``"required"`` or a named function -> :func:`genlab.serving.tools.call_grammar`.

The output is written compactly (``json.dumps``' separators, no other whitespace) and parses and
validates whenever the answer ended by itself (``finish_reason: "stop"``); one cut by ``max_tokens``
says ``"length"``. A schema or regex the grammar library cannot compile is a 400 naming the field.
Only one of these may shape an answer: a request asking for two is a 400.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from genlab.generation.constrained import ConstraintFactory, GrammarError, Grammars
from genlab.serving.api_errors import ApiError
from genlab.serving.protocol import ChatCompletionRequest
from genlab.serving.tool_prompt import uses_tools
from genlab.serving.tools import ToolPlan, call_grammar

ANY_OBJECT: dict[str, Any] = {"type": "object"}


def plan_tools(request: ChatCompletionRequest) -> ToolPlan | None:
    """How the answer may call the request's tools; None when it may not (no tools, or ``tool_choice: "none"``)."""
    choice = request.tool_choice
    if not request.tools:
        if choice not in (None, "none"):
            raise ApiError(400, "tool_choice needs tools: this request offers none.", param="tool_choice")
        return None
    if choice == "none":
        return None
    functions = tuple(tool.function.model_dump(exclude_none=True) for tool in request.tools)
    names = [f["name"] for f in functions]
    if len(set(names)) < len(names):
        raise ApiError(400, "tools names a function twice: each function name must be unique.", param="tools")
    parallel = request.parallel_tool_calls is not False
    if choice is None or choice == "auto":
        return ToolPlan(functions, "auto", parallel=parallel)
    if choice == "required":
        return ToolPlan(functions, "required", parallel=parallel)
    named = choice.function.name
    if named not in names:
        raise ApiError(400, f"tool_choice names function {named!r}, which is not among the tools ({', '.join(names)}).",
                       param="tool_choice")  # fmt: skip
    return ToolPlan(functions, "named", named, parallel=False)


def output_constraint(request: ChatCompletionRequest, plan: ToolPlan | None, grammars: Grammars) -> ConstraintFactory | None:
    """The grammar every row of the request follows, or None for free text."""
    shapes = _shapes(request, plan)
    if len(shapes) > 1:
        raise ApiError(400, f"{shapes[0]} and {shapes[1]} both shape the answer: send only one of them.", param=shapes[1])
    try:
        if request.response_format is not None and request.response_format.type != "text":
            return _response_format(request, grammars)
        if request.structured_outputs is not None:
            return _structured_outputs(request, grammars)
        if plan is not None:
            return call_grammar(plan, grammars)
    except GrammarError as error:
        raise ApiError(400, str(error), param=shapes[0], code="invalid_schema") from None
    return None


def _shapes(request: ChatCompletionRequest, plan: ToolPlan | None) -> list[str]:
    shapes = []
    if request.response_format is not None and request.response_format.type != "text":
        shapes.append("response_format")
    if request.structured_outputs is not None:
        shapes.append("structured_outputs")
    if plan is not None and (shapes or plan.choice != "auto"):
        shapes.append("tools")  # auto tool calls and a format would both shape free text
    return shapes


def _response_format(request: ChatCompletionRequest, grammars: Grammars) -> ConstraintFactory:
    form = request.response_format
    assert form is not None
    if form.type == "json_object":
        return grammars.json_schema(ANY_OBJECT, "response_format's JSON object")
    if form.json_schema is None:
        raise ApiError(400, "response_format of type json_schema needs its json_schema: {name, schema}.", param="response_format")
    schema = form.json_schema.schema_ if form.json_schema.schema_ is not None else ANY_OBJECT
    return grammars.json_schema(schema, f"response_format's JSON schema {form.json_schema.name!r}")


def _structured_outputs(request: ChatCompletionRequest, grammars: Grammars) -> ConstraintFactory:
    given = request.structured_outputs
    assert given is not None
    asked = [key for key, value in (("choice", given.choice), ("regex", given.regex), ("json", given.json_)) if value is not None]
    if len(asked) != 1:
        raise ApiError(400, "structured_outputs needs exactly one of choice, regex or json.", param="structured_outputs")
    if given.choice is not None:
        return grammars.choice(given.choice, "structured_outputs.choice")
    if given.regex is not None:
        return grammars.regex(given.regex, "structured_outputs.regex")
    schema = given.json_
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError:
            raise ApiError(400, "structured_outputs.json is text that is not JSON: give a JSON schema.", param="structured_outputs") from None
    return grammars.json_schema(schema, "structured_outputs.json")


@dataclass(frozen=True)
class ChatShape:
    """A chat request's prompt (tools and tool messages rendered), its tool plan and its rows' constraint."""

    prompt: str
    plan: ToolPlan | None
    constraint: ConstraintFactory | None


def shape_chat(backend: Any, request: ChatCompletionRequest) -> ChatShape:
    """The prompt and constraint of ``request`` on ``backend`` (genlab's engine compiles grammars; others refuse them)."""
    plan = plan_tools(request)
    if plan is not None and request.stream and request.logprobs:
        raise ApiError(400, "logprobs are not streamed with tools by this server: ask without stream, or without tools.",
                       param="logprobs", code="unsupported_parameter")  # fmt: skip
    grammars = getattr(backend, "grammars", None)
    if grammars is None:
        for name in ("tools", "response_format", "structured_outputs"):
            value = getattr(request, name)
            if value and not (name == "response_format" and value.type == "text"):
                raise ApiError(400, f"{name} is not supported by the {backend.name} backend.", param=name, code="unsupported_parameter")
    conversation = request.conversation()
    tools = plan.tools() if plan is not None else None
    if uses_tools(conversation, tools):
        prompt = backend.format_chat(conversation, tools)
    else:
        prompt = backend.format_chat(conversation)
    constraint = output_constraint(request, plan, grammars) if grammars is not None else None
    return ChatShape(prompt, plan, constraint)
