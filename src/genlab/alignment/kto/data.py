"""Preference data for KTO and ORPO: pairs or rankings read, and pairs turned into KTO's unpaired rows.

KTO learns from single answers marked desirable or not, ``{"prompt", "completion", "label"}``. A pair
(x, y_w ≻ y_l) gives (x, y_w, desirable) and (x, y_l, undesirable). A completion that several pairs
share (rankings give each completion K − 1 pairs) is kept once; one that is chosen in one pair and
rejected in another (a middle rank) has no single label and is left out, and counted. Hand-written:
trl's own ``unpair_preference_dataset`` keeps such a completion twice with both labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genlab.alignment.dpo_data import PreferencePair, read_pairs
from genlab.alignment.feedback import rankings_to_pairs, read_rankings
from genlab.errors import GenlabError


def read_preference_pairs(path: str | Path, data_format: str, *, limit: int | None = None) -> list[PreferencePair]:
    """The pairs of a pairs file, or of a rankings file (the first ``limit`` pairs when given)."""
    if data_format == "pairs":
        return read_pairs(path, limit=limit)
    pairs = rankings_to_pairs(read_rankings(path)).rows
    if not pairs:
        raise GenlabError(f"rankings file {path} gives no pairs: every prompt's completions are tied or unranked.")
    return [PreferencePair(p["prompt"], p["chosen"], p["rejected"]) for p in pairs][:limit]


def unpaired_rows(pairs: Sequence[PreferencePair]) -> tuple[list[tuple[str, str, bool]], int]:
    """((prompt, completion, desirable) rows in first-seen order, completions left out for having both labels)."""
    labels: dict[tuple[str, str], set[bool]] = {}
    for pair in pairs:
        labels.setdefault((pair.prompt, pair.chosen), set()).add(True)
        labels.setdefault((pair.prompt, pair.rejected), set()).add(False)
    rows = [(prompt, completion, next(iter(seen))) for (prompt, completion), seen in labels.items() if len(seen) == 1]
    return rows, len(labels) - len(rows)


def kto_rows(pairs: Sequence[PreferencePair], *, chat: bool) -> list[dict[str, Any]]:
    """trl's unpaired rows: conversational (trl applies the chat template) or plain text, as DPO's rows are."""
    rows, _ = unpaired_rows(pairs)
    if chat:
        return [
            {"prompt": [{"role": "user", "content": prompt}], "completion": [{"role": "assistant", "content": answer}], "label": label}
            for prompt, answer, label in rows
        ]
    return [{"prompt": prompt, "completion": answer, "label": label} for prompt, answer, label in rows]
