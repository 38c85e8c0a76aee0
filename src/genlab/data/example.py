"""One row of a text dataset, after field mapping: what every stage reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Example:
    id: str  # stable id: the dataset's own id field, or "<source>:<row number>"
    input: str  # the text the model reads (a dialogue, a question, ...)
    target: str | None = None  # the reference output (a summary, an answer), if the data has one
    fields: dict[str, Any] = field(default_factory=dict)  # the row's other fields (topic, label, ...)
