"""A chat prompt with tools and tool calls: through the model's own chat template when it renders tools, else a generic one.

A chat template *renders tools* when its source uses the ``tools`` variable (transformers'
``apply_chat_template(..., tools=...)`` hands the list to the template under that name: Qwen2.5/3,
Llama 3.1+, SmolLM3 and Mistral templates do). Such a template gets the conversation as it is: role
``"tool"`` messages and assistant ``tool_calls``, whose arguments are given as objects (as
transformers' templates expect), not as OpenAI's JSON strings.

Any other template (the default model's SmolLM2 template is plain ChatML) gets the conversation
rewritten into the three roles every template knows, in the Hermes/Qwen tool format that
:mod:`genlab.serving.tools` parses and constrains:

- the offered tools, in ``templates/tool_prompt.jinja`` (strict Jinja), end the system message (one
  is added when the conversation has none);
- an assistant turn's tool calls follow its text, one ``<tool_call>\\n{"name": ..., "arguments":
  {...}}\\n</tool_call>`` block each;
- tool results become one user turn of ``<tool_response>\\n...\\n</tool_response>`` blocks
  (consecutive results share the turn).

A conversation without tools or tool messages goes through the template untouched.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError
from genlab.prompting.chat import format_chat
from genlab.prompting.templates import PromptTemplate

TEMPLATE_FILE = Path(__file__).with_name("templates") / "tool_prompt.jinja"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"


@functools.cache
def _tool_prompt() -> PromptTemplate:
    return PromptTemplate("tool_prompt", TEMPLATE_FILE.read_text(encoding="utf-8"), origin=str(TEMPLATE_FILE))


def template_renders_tools(tokenizer: Any) -> bool:
    """True when the tokenizer's chat template uses the ``tools`` variable (see the module docstring)."""
    template = getattr(tokenizer, "chat_template", None)
    return isinstance(template, str) and "tools" in template


def call_block(name: str, arguments: dict[str, Any] | str) -> str:
    """One call as the generic format writes it (the grammar of a forced call writes the same)."""
    if isinstance(arguments, str):
        arguments = _arguments_object(arguments)
    return f'{CALL_OPEN}\n{{"name": {json.dumps(name)}, "arguments": {json.dumps(arguments, ensure_ascii=False)}}}\n{CALL_CLOSE}'


def _arguments_object(arguments: str) -> Any:
    try:
        return json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError:
        raise GenlabError(f"a tool call's arguments are not JSON: {arguments[:80]!r}.") from None


def uses_tools(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> bool:
    return bool(tools) or any(m["role"] == "tool" or m.get("tool_calls") for m in messages)


def render_chat(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
    """The conversation as the model reads it, ending where the assistant's answer starts.

    ``messages``: role, content (text), and ``tool_calls`` (OpenAI's shape) or ``tool_call_id``;
    ``tools``: OpenAI's ``[{"type": "function", "function": {...}}]``, or None.
    """
    if not uses_tools(messages, tools):
        return format_chat(tokenizer, [{"role": m["role"], "content": m["content"]} for m in messages])
    if template_renders_tools(tokenizer):
        try:
            return tokenizer.apply_chat_template(
                _for_template(messages), tools=tools or None, tokenize=False, add_generation_prompt=True
            )
        except Exception as error:  # noqa: BLE001 - a template error is the model's, named in one sentence
            raise GenlabError(f"the model's chat template cannot render these messages and tools: {error}.") from None
    return format_chat(tokenizer, generic_messages(messages, tools))


def _for_template(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        message = dict(message)
        if message.get("tool_calls"):
            message["tool_calls"] = [
                {**call, "function": {**call["function"], "arguments": _arguments_object(call["function"]["arguments"])}}
                for call in message["tool_calls"]
            ]
        out.append(message)
    return out


def generic_messages(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    """The conversation in system/user/assistant turns with genlab's generic tool prompt (see the module docstring)."""
    out: list[dict[str, str]] = []
    for message in messages:
        role, content = message["role"], message["content"] or ""
        if role == "tool":
            block = f"<tool_response>\n{content}\n</tool_response>"
            if out and out[-1]["role"] == "user" and out[-1]["content"].endswith("</tool_response>"):
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block})
        elif role == "assistant" and message.get("tool_calls"):
            calls = [call_block(c["function"]["name"], c["function"]["arguments"]) for c in message["tool_calls"]]
            text = [content.strip()] if content.strip() else []
            out.append({"role": "assistant", "content": "\n".join(text + calls)})
        else:
            out.append({"role": role, "content": content})
    if tools:
        described = [json.dumps(tool["function"], ensure_ascii=False) for tool in tools]
        prompt = _tool_prompt().render(tools=described).strip()
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{prompt}".strip()}
        else:
            out.insert(0, {"role": "system", "content": prompt})
    return out
