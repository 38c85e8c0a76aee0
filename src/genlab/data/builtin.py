"""genlab's builtin demo data: original dialogue -> summary pairs in the DialogSum style.

The dialogues were written for this project (they are not DialogSum rows), so they ship with the
package under its licence and make the embedded default work with no download.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

BUILTIN_DIALOGUES = Path(__file__).with_name("builtin") / "dialogues.jsonl"


@functools.cache
def _load() -> tuple[dict[str, str], ...]:
    rows = []
    for line in BUILTIN_DIALOGUES.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return tuple(rows)


def builtin_dialogues() -> list[dict[str, str]]:
    """Rows with ``id``, ``dialogue``, ``summary`` and ``topic``."""
    return [dict(row) for row in _load()]
