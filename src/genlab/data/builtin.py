"""genlab's builtin demo data: original dialogue -> summary pairs in the DialogSum style.

The dialogues were written for this project (they are not DialogSum rows), so they ship with the
package under its licence and make the embedded default work with no download.

Two sets ship: ``dialogues.jsonl`` (calm everyday conversations, the default) and
``heated_dialogues.jsonl`` (heated everyday arguments with mild-to-moderate profanity and insults,
each with a neutral summary free of them), for the detoxification lab: a naive summary of a heated
dialogue tends to repeat its rude words, which gives a toxicity reward something to reduce.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

BUILTIN_DIALOGUES = Path(__file__).with_name("builtin") / "dialogues.jsonl"
BUILTIN_HEATED = Path(__file__).with_name("builtin") / "heated_dialogues.jsonl"


@functools.cache
def _load(path: Path = BUILTIN_DIALOGUES) -> tuple[dict[str, str], ...]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return tuple(rows)


def builtin_dialogues() -> list[dict[str, str]]:
    """Rows with ``id``, ``dialogue``, ``summary`` and ``topic``."""
    return [dict(row) for row in _load()]


def builtin_heated_dialogues() -> list[dict[str, str]]:
    """The heated dialogues: rows with ``id``, ``dialogue``, ``summary`` (neutral) and ``topic``."""
    return [dict(row) for row in _load(BUILTIN_HEATED)]


BUILTIN_FILES = {"builtin": BUILTIN_DIALOGUES, "builtin:dialogues": BUILTIN_DIALOGUES, "builtin:heated": BUILTIN_HEATED}


def source_file(source: str) -> Path | None:
    """The file behind a data source, for lineage: a builtin set's JSONL, a local file, or None (a hub id)."""
    if source in BUILTIN_FILES:
        return BUILTIN_FILES[source]
    path = Path(source).expanduser()
    return path if path.exists() else None
