"""User tools from typed Python functions: the signature is the description and the argument parser.

``Tool.from_function(convert_currency)`` reads the name, the first docstring line and the typed
parameters, so the ReAct prompt can list ``convert_currency[amount: float, currency: str]`` and an
action ``convert_currency[12.5, "EUR"]`` (or ``amount=12.5, currency="EUR"``) is parsed into Python
literals with :func:`ast.literal_eval` (never ``eval``) and validated against the annotations by
pydantic's ``validate_call``. A one-parameter ``str`` tool takes its bracket text as is.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydantic

from genlab.errors import GenlabError, InvalidValueError

BUILTIN_ACTIONS = ("Search", "Lookup", "Calculate", "Finish")


class ToolArgumentError(GenlabError):
    """An action's argument text that does not fit the tool's signature."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    function: Callable[..., Any]
    signature: inspect.Signature

    @classmethod
    def from_function(cls, function: Callable[..., Any], *, name: str | None = None) -> Tool:
        name = name or function.__name__
        if not name.isidentifier() or name.startswith("_"):
            raise InvalidValueError(f"tool name {name!r} is not allowed: use letters, digits and _ (not first).")
        if name in BUILTIN_ACTIONS:
            raise InvalidValueError(f"tool name {name!r} is not allowed: it is a builtin action ({', '.join(BUILTIN_ACTIONS)}).")
        signature = inspect.signature(function)
        for parameter in signature.parameters.values():
            if parameter.annotation is inspect.Parameter.empty:
                raise InvalidValueError(f"tool {name!r}: parameter {parameter.name!r} needs a type annotation.")
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise InvalidValueError(f"tool {name!r}: *args and **kwargs cannot be described to a model.")
        doc = inspect.getdoc(function) or ""
        summary = doc.strip().splitlines()[0] if doc.strip() else "no description"
        validated = pydantic.validate_call(function)
        return cls(name=name, description=summary, function=validated, signature=signature)

    @property
    def usage(self) -> str:
        """``name[param: type, ...]`` and the description, for the prompt."""
        params = ", ".join(f"{p.name}: {_type_name(p.annotation)}" for p in self.signature.parameters.values())
        return f"{self.name}[{params}]: {self.description}"

    def parse_arguments(self, text: str) -> tuple[list[Any], dict[str, Any]]:
        """Literal arguments from an action's bracket text; a lone ``str`` parameter takes the text as is."""
        params = list(self.signature.parameters.values())
        if len(params) == 1 and params[0].annotation in (str, "str"):
            return [text.strip()], {}
        if not text.strip():
            return [], {}
        try:
            call = ast.parse(f"f({text})", mode="eval").body
            assert isinstance(call, ast.Call)
            args = [ast.literal_eval(node) for node in call.args]
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
        except (SyntaxError, ValueError, TypeError, AssertionError, RecursionError):
            raise ToolArgumentError(
                f"{self.name}[{text}] does not parse: write literal arguments, e.g. {self.usage.split(':')[0]}."
            ) from None
        return args, kwargs

    def __call__(self, text: str) -> str:
        args, kwargs = self.parse_arguments(text)
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as error:
            raise ToolArgumentError(f"{self.name}[{text}]: {error}; usage: {self.usage}") from None
        try:
            result = self.function(*args, **kwargs)
        except pydantic.ValidationError as error:
            first = error.errors()[0]
            names = list(self.signature.parameters)
            loc = first["loc"][0] if first["loc"] else "?"
            where = names[loc] if isinstance(loc, int) and loc < len(names) else str(loc)
            raise ToolArgumentError(f"{self.name}[{text}]: argument {where}: {first['msg']}.") from None
        return str(result)


def _type_name(annotation: Any) -> str:
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))


def as_tools(functions: list[Callable[..., Any] | Tool]) -> dict[str, Tool]:
    tools: dict[str, Tool] = {}
    for item in functions:
        tool = item if isinstance(item, Tool) else Tool.from_function(item)
        if tool.name in tools:
            raise InvalidValueError(f"tool name {tool.name!r} is registered twice.")
        tools[tool.name] = tool
    return tools
