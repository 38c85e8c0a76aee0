"""A constitution (Bai et al. 2022, arXiv:2212.08073): principles the model critiques and judges itself by.

A constitution is a YAML file of principles; each gives the three texts the Constitutional AI
pipeline asks the model::

    name: genlab-courtesy
    principles:
      - name: polite
        critique_request: Point out every way the assistant's last reply was rude or dismissive.
        revision_request: Rewrite the reply so it is polite and respectful while still helping.
        comparison: Which assistant reply is more polite and respectful?

``critique_request`` and ``revision_request`` drive the supervised stage (answer → critique →
revision); ``comparison`` is the question the model answers with "A" or "B" in the AI-feedback stage.
Red-team prompts are JSONL, one ``{"prompt": ...}`` object a line. Every problem with either file is
one sentence naming the file, the principle or line, and the field.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from genlab.errors import GenlabError, validation_error_message
from genlab.yaml_files import load_yaml_file


class ConstitutionError(GenlabError):
    """A constitution or red-team prompts file that cannot be used."""


class Principle(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]*$")
    critique_request: str = Field(min_length=1)
    revision_request: str = Field(min_length=1)
    comparison: str = Field(min_length=1)

    @field_validator("critique_request", "revision_request", "comparison")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("it must hold some text")
        return value.strip()


class Constitution(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "constitution"
    description: str = ""
    principles: tuple[Principle, ...] = Field(min_length=1)

    @field_validator("principles")
    @classmethod
    def _unique_names(cls, principles: tuple[Principle, ...]) -> tuple[Principle, ...]:
        names = [p.name for p in principles]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"principle names must be unique, and {repeated[0]!r} appears more than once")
        return principles

    def sample(self, rng: random.Random) -> Principle:
        """One principle drawn uniformly, as the paper does for each critique and each comparison."""
        return self.principles[rng.randrange(len(self.principles))]


def parse_constitution(raw: Any, *, where: str = "constitution") -> Constitution:
    if not isinstance(raw, dict):
        raise ConstitutionError(f"{where} must hold a mapping with a list of principles.")
    try:
        return Constitution.model_validate(raw)
    except ValidationError as error:
        raise ConstitutionError(_one_sentence(error, raw, where)) from None


def _one_sentence(error: ValidationError, raw: dict[str, Any], where: str) -> str:
    first = error.errors()[0]
    loc = first["loc"]
    if len(loc) >= 2 and loc[0] == "principles" and isinstance(loc[1], int):
        entries = raw.get("principles") or []
        entry = entries[loc[1]] if loc[1] < len(entries) else None
        label = f"principle {loc[1] + 1}"
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            label += f" ({entry['name']})"
        field = ".".join(str(part) for part in loc[2:])
        if first["type"] == "missing":
            return f"{where}: {label} has no {field}."
        if first["type"] == "extra_forbidden":
            allowed = ", ".join(Principle.model_fields)
            return f"{where}: {label} has an unknown field {field!r} (allowed: {allowed})."
        if not field:
            return f"{where}: {label} must be a mapping with name, critique_request, revision_request and comparison."
    if first["type"] == "missing":
        return f"{where}: {'.'.join(str(p) for p in loc)} is missing."
    return validation_error_message(error, prefix=where)


def load_constitution(path: str | Path) -> Constitution:
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConstitutionError(f"no such constitution file: {path}.")
    raw = load_yaml_file(path, what="constitution", error=ConstitutionError)
    return parse_constitution(raw, where=f"constitution {path}")


def load_prompts(path: str | Path, *, field: str = "prompt", limit: int | None = None) -> list[str]:
    """The prompts of a JSONL file (``{"prompt": ...}`` a line), the first ``limit`` when given."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConstitutionError(f"no such prompts file: {path}.")
    prompts: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if limit is not None and len(prompts) >= limit:
            break
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConstitutionError(f"{path} line {number} is not valid JSON ({error.msg}).") from None
        value = row.get(field) if isinstance(row, dict) else None
        if not isinstance(value, str) or not value.strip():
            raise ConstitutionError(f"{path} line {number} has no text in its {field!r} field.")
        prompts.append(value.strip())
    if not prompts:
        raise ConstitutionError(f"prompts file {path} holds no prompts.")
    return prompts
