"""Ollama's Modelfile and template syntax, as its documentation defines them, for the export tests.

Ollama's docs (docs/modelfile.md and docs/template.md in the Ollama repository):

- a Modelfile is lines ``INSTRUCTION arguments``; the instructions are FROM (required), PARAMETER,
  TEMPLATE, SYSTEM, ADAPTER, LICENSE, MESSAGE, REQUIRES; ``#`` starts a comment; ``\"\"\"`` quotes a
  multi-line argument; ``PARAMETER stop`` takes a quoted string;
- TEMPLATE is Go's text/template over the documented variables: ``.System``, ``.Prompt``,
  ``.Response``, ``.Suffix``, ``.Tools``, and ``.Messages`` whose items have ``.Role`` (system, user,
  assistant, tool), ``.Content`` and ``.ToolCalls``; actions ``range``, ``if``/``else if``/``else``,
  ``end``, the function ``eq``; ``{{-``/``-}}`` trim the whitespace beside them.

``render_go_template`` implements exactly that subset of text/template (by hand: no Python package
implements Go templates; tests/unit/test_export_modelfile.py checks it on the Llama 3 template the
Ollama docs give as their example). With the Modelfile's SYSTEM, Ollama puts a system message first in
``.Messages`` when a request has none (Ollama's chat handler); ``ollama_prompt`` does the same.
"""

from __future__ import annotations

import re

INSTRUCTIONS = {"FROM", "PARAMETER", "TEMPLATE", "SYSTEM", "ADAPTER", "LICENSE", "MESSAGE", "REQUIRES"}
VARIABLES = {".System", ".Prompt", ".Response", ".Suffix", ".Tools", ".Messages", ".Role", ".Content", ".ToolCalls"}
ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.DOTALL)


def parse_modelfile(text: str) -> list[tuple[str, str]]:
    """(instruction, argument) pairs, as Ollama's Modelfile format defines them."""
    pairs, position = [], 0
    line = re.compile(r'[ \t]*(?:#[^\n]*|([A-Za-z]+)[ \t]+("""(.*?)"""|[^\n]*))?\n', re.DOTALL)
    while position < len(text):
        match = line.match(text, position)
        assert match, f"not a Modelfile line at {text[position:position + 40]!r}"
        if match.group(1):
            pairs.append((match.group(1).upper(), match.group(3) if match.group(3) is not None else match.group(2)))
        position = match.end()
    return pairs


def render_go_template(template: str, data: dict) -> str:
    """Go text/template, the subset Ollama's docs use: text, {{ .X }}, range, if/else if/else/end, eq, trim markers."""
    tokens: list[tuple[str, str]] = []
    position = 0
    for match in ACTION.finditer(template):
        text = template[position:match.start()]
        if match.group(1):
            text = text.rstrip(" \t\r\n")
        if tokens and tokens[-1][0] == "trim-next":
            tokens.pop()
            text = text.lstrip(" \t\r\n")
        tokens.append(("text", text))
        tokens.append(("action", match.group(2)))
        if match.group(3):
            tokens.append(("trim-next", ""))
        position = match.end()
    tail = template[position:]
    if tokens and tokens[-1][0] == "trim-next":
        tokens.pop()
        tail = tail.lstrip(" \t\r\n")
    tokens.append(("text", tail))

    def value(expr: str, dot: dict, root: dict):
        expr = expr.strip()
        if expr.startswith("eq "):
            left, right = re.fullmatch(r'eq\s+(\S+)\s+"([^"]*)"', expr).groups()
            return value(left, dot, root) == right
        assert expr in VARIABLES, f"{expr!r} is not a variable Ollama documents"
        return dot.get(expr[1:], root.get(expr[1:]))

    def block(index: int, dot: dict, root: dict, out: list[str] | None) -> tuple[int, str]:
        """Render tokens from ``index`` until else/end; return where it stopped and which keyword."""
        while index < len(tokens):
            kind, body = tokens[index]
            index += 1
            if kind == "text":
                if out is not None:
                    out.append(body)
            elif body == "end" or body.startswith("else"):
                return index - 1, body
            elif body.startswith("range "):
                start = index
                items = value(body[6:], dot, root) if out is not None else []
                for item in items or []:
                    index, _ = block(start, item, root, out)
                index, _ = block(start, dot, root, None) if not items else (index, None)
                index += 1  # past {{ end }}
            elif body.startswith("if "):
                taken = out is not None and bool(value(body[3:], dot, root))
                index, keyword = block(index, dot, root, out if taken else None)
                while keyword != "end":
                    condition = keyword[len("else"):].strip()
                    now = out is not None and not taken and (not condition or bool(value(condition[3:], dot, root)))
                    index, keyword = block(index + 1, dot, root, out if now else None)
                    taken = taken or now
                index += 1
            elif out is not None:
                out.append(str(value(body, dot, root)))
        return index, ""

    out: list[str] = []
    block(0, data, data, out)
    return "".join(out)


def ollama_prompt(modelfile: str, messages: list[dict]) -> str:
    """The prompt Ollama builds for a chat request with ``messages`` from this Modelfile."""
    pairs = parse_modelfile(modelfile)
    assert {name for name, _ in pairs} <= INSTRUCTIONS and "FROM" in dict(pairs)  # FROM is required
    template = next(arg for name, arg in pairs if name == "TEMPLATE")
    system = next((arg for name, arg in pairs if name == "SYSTEM"), None)
    if system is not None and (not messages or messages[0]["role"] != "system"):
        messages = [{"role": "system", "content": system}, *messages]
    data = {"Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages], "System": system or ""}
    return render_go_template(template, data)
