"""Preference pairs for reward models: read from files, built from genlab's dialogues, split by prompt.

A pair is trl's explicit-prompt preference format, ``{"prompt", "chosen", "rejected"}``: for the
same prompt, a person (or a rule) preferred ``chosen`` over ``rejected``. Sources:

- a pairs JSONL file, one such object a line (extra fields, e.g. ``kind``, ride along);
- a rankings JSONL file, ``{"prompt", "completions", "ranks"}``, turned into pairs by
  :func:`genlab.alignment.feedback.rankings_to_pairs` (every better-ranked completion against every
  worse one);
- ``builtin:summary-preferences``: :func:`build_summary_preferences` over genlab's 64 builtin dialogues.

Held-out pairs are chosen **by prompt** (:func:`split_by_prompt`): all pairs of a prompt go to the
same side, so the held-out accuracy is measured on prompts the reward model never saw.
:func:`tokenize_pairs` turns pairs into the token ids the reward model reads (trl's processed format).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genlab.errors import GenlabError, InvalidValueError

if TYPE_CHECKING:
    from genlab.alignment.reward import Formatting

BUILTIN_SUMMARY_PREFERENCES = "builtin:summary-preferences"
DEGRADATIONS = ("mismatched", "truncated", "rude", "vague")

# Rude asides, written for this project: offensive in tone, no slurs. Each is inserted into an
# otherwise correct summary, so the pair differs only by the rudeness.
RUDE_PHRASES = (
    "What a stupid waste of time.",
    "Honestly, both of these idiots are useless.",
    "Who cares, the whole thing is crap anyway.",
    "#Person1# acts like a complete moron.",
    "Shut up already, this is so damn boring.",
    "They are a pathetic bunch of losers.",
)
VAGUE_SUMMARIES = (
    "Two people talk about something.",
    "#Person1# and #Person2# have a conversation.",
    "Someone asks a question and gets an answer.",
    "They discuss a few things.",
)


class PreferenceDataError(GenlabError):
    """A preference file that cannot be read or does not hold pairs or rankings."""


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # e.g. {"kind": "truncated"}

    @property
    def kind(self) -> str | None:
        value = self.extra.get("kind")
        return str(value) if value is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected, **self.extra}


def summary_prompt(dialogue: str) -> str:
    """The prompt a summary answers: genlab's ``summarize`` template (the course's Lab 1 prompt)."""
    from genlab.prompting.templates import get_template

    return get_template("summarize").render(input=dialogue, examples=[])


def _truncate(summary: str, rng: random.Random) -> str:
    words = summary.split()
    keep = max(2, round(len(words) * rng.uniform(0.3, 0.6)))
    return " ".join(words[:keep]).rstrip(".,;:!?")  # cut mid-sentence: no closing full stop


def _insert_rude(summary: str, rng: random.Random) -> str:
    phrase = rng.choice(RUDE_PHRASES)
    sentences = [s for s in summary.replace(". ", ".\n").splitlines() if s.strip()]
    sentences.insert(rng.randint(0, len(sentences)), phrase)
    return " ".join(sentences)


def build_summary_preferences(
    dialogues: Sequence[dict[str, str]] | None = None,
    *,
    kinds: Sequence[str] = DEGRADATIONS,
    seed: int = 0,
) -> list[PreferencePair]:
    """Preference pairs for dialogue summaries: the reference summary beats a degraded one.

    For each dialogue (default: genlab's builtin dialogues) and each degradation in ``kinds`` the
    prompt is the ``summarize`` prompt of the dialogue, ``chosen`` its reference summary and
    ``rejected`` one of:

    - ``mismatched``: the reference summary of another dialogue (fluent, but about something else);
    - ``truncated``: the reference cut to 30-60% of its words, mid-sentence;
    - ``rude``: the reference with a rude aside inserted between its sentences;
    - ``vague``: a generic summary that fits any dialogue.

    Pairs come dialogue by dialogue, the kinds interleaved, so the first N pairs cover every kind.
    ``seed`` fixes every random choice. Each pair's ``extra`` holds ``kind`` and the dialogue ``id``.
    """
    from genlab.data.builtin import builtin_dialogues

    unknown = [kind for kind in kinds if kind not in DEGRADATIONS]
    if unknown or not kinds:
        raise InvalidValueError(f"kinds={list(kinds)!r} is not allowed: choose from {', '.join(DEGRADATIONS)}.")
    rows = list(dialogues) if dialogues is not None else builtin_dialogues()
    if "mismatched" in kinds and len(rows) < 2:
        raise InvalidValueError("mismatched summaries need at least 2 dialogues to swap between.")
    rng = random.Random(seed)
    pairs = []
    for index, row in enumerate(rows):
        prompt, reference = summary_prompt(row["dialogue"]), row["summary"]
        for kind in kinds:
            if kind == "mismatched":
                other = rng.choice([i for i in range(len(rows)) if i != index and rows[i]["summary"] != reference])
                rejected = rows[other]["summary"]
            elif kind == "truncated":
                rejected = _truncate(reference, rng)
            elif kind == "rude":
                rejected = _insert_rude(reference, rng)
            else:
                rejected = rng.choice(VAGUE_SUMMARIES)
            pairs.append(PreferencePair(prompt, reference, rejected, {"kind": kind, "id": row.get("id", str(index))}))
    return pairs


def write_pairs(pairs: Sequence[PreferencePair], path: str | Path) -> Path:
    """Write pairs as JSONL (trl's preference format), atomically."""
    from genlab.atomic import atomic_write_text

    return atomic_write_text(path, "".join(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in pairs))


def resolve_data_path(path: str, recipe_dir: Path | None) -> str:
    """A relative data path is read against the recipe's folder when it is not found where we are."""
    if path.startswith("builtin:"):
        return path
    candidate = Path(path).expanduser()
    if not candidate.is_absolute() and not candidate.exists() and recipe_dir is not None:
        beside = recipe_dir / candidate
        if beside.exists():
            return str(beside)
    return str(candidate)


def load_preference_pairs(source: str, *, limit: int | None = None) -> list[PreferencePair]:
    """Pairs from a pairs or rankings JSONL file, or ``builtin:summary-preferences`` (see the module docstring)."""
    if source == BUILTIN_SUMMARY_PREFERENCES:
        pairs = build_summary_preferences()
    elif source.startswith("builtin:"):
        raise PreferenceDataError(f"there is no builtin preference set {source!r}; the builtin one is {BUILTIN_SUMMARY_PREFERENCES}.")
    else:
        pairs = _read_jsonl_pairs(Path(source))
    if not pairs:
        raise PreferenceDataError(f"{source} holds no preference pairs.")
    return pairs[:limit] if limit is not None else pairs


def _read_jsonl_pairs(path: Path) -> list[PreferencePair]:
    if not path.is_file():
        raise PreferenceDataError(f"no such preference file: {path}.")
    if path.suffix.lower() not in (".jsonl", ".json"):
        raise PreferenceDataError(f"cannot read {path}: preference data must be a .jsonl file.")
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise PreferenceDataError(f"{path} is not UTF-8 text.") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise PreferenceDataError(f"{path} line {number} is not valid JSON: {error.msg}.") from None
        if not isinstance(row, dict):
            raise PreferenceDataError(f"{path} line {number} is not a JSON object.")
        rows.append((number, row))
    if rows and {"completions", "ranks"} <= set(rows[0][1]):
        return _pairs_from_rankings(path)
    return [_pair_from_row(path, number, row) for number, row in rows]


def _pair_from_row(path: Path, number: int, row: dict[str, Any]) -> PreferencePair:
    for name in ("prompt", "chosen", "rejected"):
        if name not in row:
            fields = ", ".join(row) or "none"
            raise PreferenceDataError(
                f"{path} line {number} has no field {name!r} (its fields are: {fields}); a pair needs "
                "prompt, chosen and rejected, and a ranking prompt, completions and ranks."
            )
        if not isinstance(row[name], str) or not row[name].strip():
            raise PreferenceDataError(f"{path} line {number}: field {name!r} must be non-empty text.")
    extra = {k: v for k, v in row.items() if k not in ("prompt", "chosen", "rejected")}
    return PreferencePair(row["prompt"], row["chosen"], row["rejected"], extra)


def _pairs_from_rankings(path: Path) -> list[PreferencePair]:
    """K ranked completions give up to K(K-1)/2 pairs (ties and unranked ones give none): genlab.alignment.feedback."""
    from genlab.alignment.feedback import rankings_to_pairs, read_rankings

    converted = rankings_to_pairs(read_rankings(path))
    return [PreferencePair(row["prompt"], row["chosen"], row["rejected"]) for row in converted.rows]


def split_by_prompt(
    pairs: Sequence[PreferencePair], validation_size: float | int, seed: int
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """``(train, validation)``: a fraction (< 1) or a count of the distinct prompts is held out, with all their pairs."""
    prompts = list(dict.fromkeys(pair.prompt for pair in pairs))  # first-seen order, then shuffled by seed
    if len(prompts) < 2:
        raise InvalidValueError("a held-out split needs pairs for at least 2 different prompts.")
    if isinstance(validation_size, float) and validation_size < 1:
        count = round(validation_size * len(prompts))
    else:
        count = int(validation_size)
    if not 1 <= count < len(prompts):
        raise InvalidValueError(
            f"data.validation_size={validation_size!r} is not allowed: it holds out {count} of {len(prompts)} "
            f"prompts, and a split needs 1 to {len(prompts) - 1}."
        )
    order = prompts[:]
    random.Random(seed).shuffle(order)
    held_out = set(order[:count])
    return [p for p in pairs if p.prompt not in held_out], [p for p in pairs if p.prompt in held_out]


@dataclass
class TokenizedPairs:
    pairs: list[PreferencePair]
    rows: list[dict[str, list[int]]]  # {"chosen_ids", "rejected_ids"}: trl's processed preference format
    dropped: int


def tokenize_pairs(pairs: list[PreferencePair], tokenizer: Any, formatting: Formatting, max_length: int) -> TokenizedPairs:
    """Token ids of each pair as the reward model reads them; a pair longer than ``max_length`` is dropped, never cut."""
    from genlab.alignment.reward import reward_input_ids

    kept, rows, dropped = [], [], 0
    for pair in pairs:
        chosen = reward_input_ids(tokenizer, pair.prompt, pair.chosen, formatting)
        rejected = reward_input_ids(tokenizer, pair.prompt, pair.rejected, formatting)
        if max(len(chosen), len(rejected)) > max_length:
            dropped += 1
            continue
        kept.append(pair)
        rows.append({"chosen_ids": chosen, "rejected_ids": rejected})
    return TokenizedPairs(kept, rows, dropped)
