"""Errors a user can cause, each carrying one clear sentence.

Library code raises a :class:`GenlabError` (or a subclass) for anything the user can fix: a bad
value, a missing file, an unknown model, no network for a hub id. The CLI prints the message on one
line and exits with ``exit_code`` (2, like a usage error); it never shows a traceback for these.
Bugs stay ordinary exceptions and keep their tracebacks.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class GenlabError(Exception):
    """An error the user can fix; ``str(error)`` is one sentence saying what is wrong."""

    exit_code = 2


class InvalidValueError(GenlabError, ValueError):
    """A configuration field holds a value outside what is allowed."""


class ModelNotFoundError(GenlabError):
    """A model name, folder or file that cannot be found."""


class ModelLoadError(GenlabError):
    """A model that exists but cannot be loaded (corrupt file, unsupported architecture)."""


class PromptTooLongError(GenlabError):
    """A prompt (plus the tokens to generate) does not fit the model's context window."""


class HubUnavailableError(GenlabError):
    """A hub id was asked for but the hub cannot be reached (offline, or HF_HUB_OFFLINE is set)."""


class BackendUnavailableError(GenlabError):
    """An optional serving backend whose library is not installed, or that cannot run on this machine."""


def _describe_input(value: Any) -> str:
    return repr(value) if not isinstance(value, (dict, list)) else "the given value"


def validation_error_message(error: ValidationError, *, prefix: str = "") -> str:
    """Turn pydantic's multi-line report into one sentence naming the field, the value and the rule.

    Only the first problem is reported: fixing one at a time is how people read errors anyway.
    """
    first = error.errors()[0]
    # pydantic prefixes custom ValueErrors with "Value error, "; the rest is our own sentence.
    message = first["msg"].removeprefix("Value error, ")
    lead = f"{prefix}: " if prefix else ""
    if not first["loc"]:  # a rule across fields: the message names them
        return f"{lead}{message}."
    field = ".".join(str(part) for part in first["loc"])
    if first["type"] == "value_error" and isinstance(first.get("input"), dict):  # a rule across a section's fields
        return f"{lead}{message} (in {field})."
    value = _describe_input(first.get("input"))
    return f"{lead}{field}={value} is not allowed: {message}."


def invalid_value(error: ValidationError, *, prefix: str = "") -> InvalidValueError:
    return InvalidValueError(validation_error_message(error, prefix=prefix))
