"""Structured outputs on ONNX Runtime GenAI: the server's grammar requests as llguidance grammars.

The server asks a backend's ``grammars`` object for a constraint (:mod:`genlab.serving.structured`:
``json_schema``, ``regex``, ``choice``, and for a required or named tool call ``structural_tag``
with ``json_schema_ebnf`` content, :func:`genlab.serving.tools.call_grammar`). genlab's engine
compiles those with xgrammar; ORT GenAI constrains decoding itself, with llguidance, through
``TurnOptions.set_guidance(kind, grammar)`` where kind is ``json_schema``, ``regex`` or
``lark_grammar``. This module answers the same calls with a :class:`Guidance` (that kind and text)
which the backend hands to ``set_guidance``:

- a JSON schema passes through with llguidance's ``x-guidance`` key asking for compact JSON (no free
  whitespace, as genlab's xgrammar grammars), a regex as it is;
- a choice is the Lark grammar ``start: "a" | "b"`` (each option a JSON-quoted literal);
- a tool call (xgrammar's structural tag: a ``tag`` or ``tags_with_separator`` whose content is a
  JSON schema) is a Lark grammar whose arguments are llguidance's ``%json{schema}`` rule, so
  ``{"name": "f", "arguments": {...}}`` between the tool-call markers follows the function's schema.

Written by hand: only that translation (a few lines per shape); llguidance does the constraining.
Anything else of the structural-tag format is refused in one sentence (GrammarError, a 400 naming
the request field).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from genlab.generation.constrained import GrammarError  # what the server turns into a 400 naming the field


class GuidanceError(GrammarError):
    """A grammar request this translation cannot express (the server turns it into a 400)."""


@dataclass(frozen=True)
class Guidance:
    """One ``set_guidance`` call: llguidance's grammar kind and its text."""

    kind: str  # "json_schema", "regex" or "lark_grammar"
    text: str

    def __call__(self) -> Guidance:  # the server treats a constraint as a factory (one per row)
        return self


_SCHEMA = "ort-json-schema:"  # json_schema_ebnf's answer: a schema to embed, as llguidance's %json rule


class OrtGrammars:
    """The ``grammars`` of :class:`~genlab.serving.backends.ort_genai_backend.OrtGenaiBackend`."""

    def json_schema(self, schema: dict[str, Any] | bool, what: str = "the JSON schema") -> Guidance:
        return Guidance("json_schema", _schema_text(schema, what))

    def json_schema_ebnf(self, schema: dict[str, Any] | bool, what: str = "the JSON schema") -> str:
        return _SCHEMA + _schema_text(schema, what)

    def regex(self, pattern: str, what: str = "the regex") -> Guidance:
        if not pattern:
            raise GuidanceError(f"{what} is empty: give a pattern.")
        return Guidance("regex", pattern)

    def choice(self, options: list[str], what: str = "the choice") -> Guidance:
        if not options or any(not isinstance(o, str) or not o for o in options):
            raise GuidanceError(f"{what} must be a list of non-empty strings.")
        return Guidance("lark_grammar", "start: " + " | ".join(json.dumps(o) for o in options))

    def structural_tag(self, tag: dict[str, Any], what: str = "the structural tag") -> Guidance:
        form = tag.get("format", {})
        if form.get("type") == "tag":
            start = _tag_rule(form, 0, what)
            return Guidance("lark_grammar", f"start: tag0\n{start}")
        if form.get("type") == "tags_with_separator":
            tags = form.get("tags", [])
            rules = [_tag_rule(t, i, what) for i, t in enumerate(tags)]
            call = " | ".join(f"tag{i}" for i in range(len(tags)))
            many = "" if form.get("stop_after_first") else f" ({json.dumps(form.get('separator', ''))} call)*"
            head = f"start: call{many}" if form.get("at_least_one", True) else f"start: (call{many})?"
            return Guidance("lark_grammar", "\n".join([head, f"call: {call}", *rules]))
        raise GuidanceError(f"{what} has a shape the onnxruntime-genai backend cannot constrain ({form.get('type')!r}).")


def _tag_rule(tag: dict[str, Any], index: int, what: str) -> str:
    content = tag.get("content", {})
    grammar = content.get("grammar", "") if content.get("type") == "grammar" else ""
    if tag.get("type") != "tag" or not grammar.startswith(_SCHEMA):
        raise GuidanceError(f"{what} has a tag the onnxruntime-genai backend cannot constrain.")
    schema = grammar[len(_SCHEMA) :]
    return f"tag{index}: {json.dumps(tag['begin'])} args{index} {json.dumps(tag['end'])}\nargs{index}: %json{schema}"


# llguidance's own schema keys: JSON as json.dumps writes it, no free whitespace (a model cannot pad its answer
# with newlines until max_tokens; genlab's xgrammar grammars say the same with any_whitespace=False)
_COMPACT = {"whitespace_flexible": False, "key_separator": ": ", "item_separator": ", "}


def _schema_text(schema: Any, what: str) -> str:
    if not isinstance(schema, (dict, bool)):
        raise GuidanceError(f"{what} must be a JSON object (or true/false).")
    if schema is True:
        schema = {}
    if schema is False:
        raise GuidanceError(f"{what} is false: no answer can match it.")
    return json.dumps({**schema, "x-guidance": _COMPACT})
