"""Prompt templates: Jinja files rendered strictly, so a missing variable fails loudly.

Every template receives ``input`` (the query text) and ``examples`` (solved examples, each with
``.input`` and ``.target``; empty for a zero-shot prompt), plus any variables of its own. The builtin
library lives in ``templates/*.jinja`` beside this module:

- ``summarize``: the prompt of the course's Lab 1 (dialogue summarisation with FLAN-T5), each shot
  ``Dialogue:\\n\\n{input}\\n\\nWhat was going on?\\n{target}\\n\\n\\n`` and the query last;
- ``sentiment``, ``translate``, ``qa``, ``extract_entities``: an instruction line, then
  ``Label: value`` shots, ending on the bare cue (``Sentiment:``) so the model answers on that line.

Rendering uses ``StrictUndefined`` (no silent empty strings), keeps the file's trailing newline, does
no HTML escaping, and refuses to print ``None`` (an example without a target is a mistake, not text).
Variables a template does not use are refused too, so a misspelt name cannot be silently ignored.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta

from genlab.errors import GenlabError

BUILTIN_DIR = Path(__file__).with_name("templates")
TEMPLATE_SUFFIXES = (".jinja", ".txt")
ALWAYS_GIVEN = frozenset({"input", "examples"})  # every caller passes these, used or not
# Defaults for a builtin template's own variables; a caller's value wins.
BUILTIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "summarize": {},
    "sentiment": {"labels": "positive or negative"},
    "translate": {"source_language": "English", "target_language": "French"},
    "qa": {},
    "extract_entities": {},
}
# Where a builtin template's answer ends: the text that starts the next shot. A model that answers
# and then goes on imitating the pattern is cut there (generation settings' stop sequences).
BUILTIN_STOPS: dict[str, tuple[str, ...]] = {
    "summarize": ("\n\n\n", "Dialogue:"),
    "sentiment": ("\n",),
    "translate": ("\n",),
    "qa": ("\n\n",),
    "extract_entities": ("\n\n",),
}
_UNDEFINED_NAME = re.compile(r"^'([A-Za-z_][A-Za-z0-9_]*)' is undefined$")


class TemplateError(GenlabError):
    """A template that cannot be found, parsed or rendered."""


class TemplateVariableError(TemplateError):
    """A template rendered without a variable it needs, or with one it does not use."""


class _NoneValue(Exception):
    """Raised inside rendering when an expression prints ``None``."""


def _refuse_none(value: Any) -> Any:
    if value is None:
        raise _NoneValue
    return value


_ENVIRONMENT = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,  # "What was going on?\n" ends the lab's prompt: the newline matters
    autoescape=False,  # prompts are plain text, not HTML
    finalize=_refuse_none,
)


class PromptTemplate:
    """A named Jinja template; ``render(input=..., examples=[...])`` gives the prompt text."""

    def __init__(
        self,
        name: str,
        source: str,
        *,
        defaults: Mapping[str, Any] | None = None,
        origin: str = "<string>",
        stop: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.source = source
        self.origin = origin  # "builtin" or the file it was read from
        self.defaults = dict(defaults or {})
        self.stop = stop  # stop sequences that end an answer in this template's format
        try:
            parsed = _ENVIRONMENT.parse(source)
        except jinja2.TemplateSyntaxError as error:
            where = f"template file {origin}" if origin not in ("builtin", "<string>") else f"template {name!r}"
            raise TemplateError(f"{where} has a syntax error on line {error.lineno}: {error.message}.") from None
        self.variables: frozenset[str] = frozenset(meta.find_undeclared_variables(parsed))
        self._compiled = _ENVIRONMENT.from_string(parsed)

    def __repr__(self) -> str:
        return f"PromptTemplate(name={self.name!r}, origin={self.origin!r})"

    def render(self, **variables: Any) -> str:
        unused = sorted(set(variables) - self.variables - ALWAYS_GIVEN)
        if unused:
            known = ", ".join(sorted(self.variables)) or "none"
            raise TemplateVariableError(
                f"template {self.name!r} has no variable {unused[0]!r}; its variables are: {known}."
            )
        values = {**self.defaults, **variables}
        try:
            return self._compiled.render(**values)
        except jinja2.UndefinedError as error:
            missing = _UNDEFINED_NAME.match(str(error))
            if missing:
                raise TemplateVariableError(
                    f"template {self.name!r} needs variable {missing.group(1)!r}."
                ) from None
            raise TemplateVariableError(f"template {self.name!r} cannot render: {error}.") from None
        except _NoneValue:
            raise TemplateVariableError(
                f"template {self.name!r} was given None for a value it prints (an example without a target?)."
            ) from None
        except jinja2.TemplateError as error:
            raise TemplateError(f"template {self.name!r} cannot render: {error}.") from None


def builtin_template_names() -> list[str]:
    return list(BUILTIN_DEFAULTS)


@functools.cache
def _builtin(name: str) -> PromptTemplate:
    source = (BUILTIN_DIR / f"{name}.jinja").read_text(encoding="utf-8")
    return PromptTemplate(name, source, defaults=BUILTIN_DEFAULTS[name], origin="builtin", stop=BUILTIN_STOPS[name])


def load_template_file(path: str | Path) -> PromptTemplate:
    """A user template from a ``.jinja`` or ``.txt`` file, named after the file's stem."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise TemplateError(f"no such template file: {path}.")
    if path.suffix not in TEMPLATE_SUFFIXES:
        raise TemplateError(f"{path} is not a template file: use a .jinja or .txt file.")
    try:
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TemplateError(f"template file {path} is not UTF-8 text.") from None
    return PromptTemplate(path.stem, source, origin=str(path))


def get_template(name_or_path: str) -> PromptTemplate:
    """A builtin template by name, or a user template from a file path."""
    if name_or_path in BUILTIN_DEFAULTS:
        return _builtin(name_or_path)
    path = Path(name_or_path).expanduser()
    if path.suffix in TEMPLATE_SUFFIXES or path.exists() or "/" in name_or_path or "\\" in name_or_path:
        return load_template_file(path)
    names = ", ".join(builtin_template_names())
    raise TemplateError(
        f"unknown template {name_or_path!r}: use a builtin name ({names}) or a path to a .jinja or .txt file."
    )
