"""Batch transform input: a JSONL file read into numbered rows, bad rows kept aside with the reason.

One JSON object per line::

    {"custom_id": "a1", "prompt": "Summarise: ..."}
    {"custom_id": "a2", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 20, "temperature": 0.7}

``custom_id`` is optional (a row is then known by its line number, counted from 1); ``prompt`` or
``messages`` is required; ``max_tokens``, ``temperature``, ``top_p``, ``top_k``, ``stop`` and ``seed``
override the batch's settings for that row. Other fields are ignored. Blank lines are
skipped. A line that is not a JSON object, has neither a prompt nor messages, or has a setting out of
range becomes a :class:`BadRow` — reported, not fatal. Two rows with the same ``custom_id`` are fatal:
the output could not say which answer belongs to which.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError, InvalidValueError
from genlab.generation.settings import GenerationSettings

# Row fields that set generation, and the GenerationSettings field each one sets (OpenAI's names).
ROW_SETTINGS = {
    "max_tokens": "max_new_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "stop": "stop",
    "seed": "seed",
}
RowKey = tuple[str, str | int]  # ("id", custom_id) or ("line", line number): never equal across the two


class DuplicateCustomIdError(GenlabError):
    """The input names the same custom_id on two rows."""


def row_key(custom_id: str | None, line: int) -> RowKey:
    return ("id", custom_id) if custom_id is not None else ("line", line)


@dataclass(frozen=True)
class BatchRow:
    line: int  # 1-based line number in the input file
    custom_id: str | None
    prompt: str | None  # exactly one of prompt and messages is set
    messages: list[dict[str, Any]] | None
    settings: GenerationSettings
    raw: str  # the line as read, for the errors file

    @property
    def key(self) -> RowKey:
        return row_key(self.custom_id, self.line)


@dataclass(frozen=True)
class BadRow:
    line: int
    error: str  # one sentence
    raw: str  # the line as read

    def to_record(self) -> dict[str, Any]:
        return {"line": self.line, "error": self.error, "raw": self.raw}


def read_rows(
    path: str | Path, defaults: GenerationSettings, *, base_seed: int | None = None
) -> tuple[list[BatchRow], list[BadRow]]:
    """The good and bad rows of the JSONL file at ``path``, each in file order.

    ``defaults`` are the batch's settings; a row that samples with no seed of its own gets
    ``base_seed + line`` when ``base_seed`` is given (reproducible), else a fresh seed per run.
    """
    good: list[BatchRow] = []
    bad: list[BadRow] = []
    with open(path, "rb") as handle:
        for line, data in enumerate(handle, start=1):
            raw = data.decode("utf-8", errors="replace").rstrip("\r\n")
            if not raw.strip():
                continue
            try:
                good.append(parse_row(data, line, defaults, base_seed, raw=raw))
            except InvalidValueError as error:
                bad.append(BadRow(line, str(error), raw))
    _refuse_duplicate_ids(good, path)
    return good, bad


def parse_row(
    data: bytes, line: int, defaults: GenerationSettings, base_seed: int | None = None, *, raw: str = ""
) -> BatchRow:
    """One input line as a row; raises :class:`InvalidValueError` saying what is wrong with it."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidValueError("the line is not UTF-8 text.") from None
    except json.JSONDecodeError as error:
        raise InvalidValueError(f"the line is not JSON ({error.msg} at column {error.colno}).") from None
    if not isinstance(obj, dict):
        raise InvalidValueError(f"the line holds a JSON {type(obj).__name__}, not an object with a prompt.")
    custom_id = obj.get("custom_id")
    if custom_id is not None and (not isinstance(custom_id, str) or not custom_id):
        raise InvalidValueError(f"custom_id={custom_id!r} is not allowed: it must be a non-empty string.")
    prompt, messages = obj.get("prompt"), obj.get("messages")
    if (prompt is None) == (messages is None):
        raise InvalidValueError("a row needs exactly one of 'prompt' (text) or 'messages' (a conversation).")
    if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
        raise InvalidValueError("prompt is not allowed: it must be non-empty text.")
    if messages is not None and (not isinstance(messages, list) or not messages):
        raise InvalidValueError("messages is not allowed: it must be a non-empty list of {role, content} objects.")
    return BatchRow(line, custom_id, prompt, messages, _row_settings(obj, line, defaults, base_seed), raw)


def _row_settings(obj: dict[str, Any], line: int, defaults: GenerationSettings, base_seed: int | None) -> GenerationSettings:
    changes = {field: obj[name] for name, field in ROW_SETTINGS.items() if name in obj}
    stop = changes.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
        isinstance(stop, list) and all(isinstance(s, str) for s in stop)
    ):
        raise InvalidValueError(f"stop={stop!r} is not allowed: it must be text or a list of texts.")
    if "stop" in changes and stop is None:
        changes["stop"] = ()
    try:
        settings = GenerationSettings(**{**defaults.model_dump(), **changes})
    except InvalidValueError as error:  # name the row's own field, not the engine's
        raise InvalidValueError(str(error).replace("max_new_tokens", "max_tokens")) from None
    if not settings.greedy and settings.seed is None and base_seed is not None:
        settings = settings.with_overrides(seed=base_seed + line)
    return settings


def _refuse_duplicate_ids(rows: list[BatchRow], path: str | Path) -> None:
    lines: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        if row.custom_id is not None:
            lines[row.custom_id].append(row.line)
    repeated = [(custom_id, found) for custom_id, found in lines.items() if len(found) > 1]
    if not repeated:
        return
    described = "; ".join(
        f"{custom_id!r} on lines {', '.join(map(str, found))}" for custom_id, found in repeated[:5]
    )
    more = f" (and {len(repeated) - 5} more)" if len(repeated) > 5 else ""
    raise DuplicateCustomIdError(
        f"{path} repeats custom_ids, which must be unique: {described}{more}."
    )
