"""Recipes: YAML files validated by a pydantic schema, with ``key=value`` overrides from the command line.

A recipe is what a user copies and edits (``recipes/*.yaml``). Overrides use dotted paths into it
(``training.max_steps=2``); a bare key (``max_steps=2``) is accepted when exactly one field of the
recipe has that name, so the common knobs need no section. Values are parsed as YAML scalars
(``2`` is an int, ``5e-4`` a float, ``true`` a bool, ``[q_proj, v_proj]`` a list). Every problem --
a missing file, bad YAML, an unknown key, a value a field does not allow -- is one sentence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from genlab.errors import GenlabError, validation_error_message
from genlab.yaml_files import load_yaml_file, structure_problem

Schema = TypeVar("Schema", bound=BaseModel)


class RecipeError(GenlabError):
    """A recipe file or override that cannot be used."""


def read_recipe_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML recipe file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise RecipeError(f"no such recipe file: {path}")
    raw = load_yaml_file(path, what="recipe", error=RecipeError)
    if not isinstance(raw, dict):
        raise RecipeError(f"recipe {path} must hold a mapping of settings (name, model, data, ...).")
    return raw


def parse_override(text: str) -> tuple[str, Any]:
    """``"training.lr=5e-4"`` -> ``("training.lr", 0.0005)``."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise RecipeError(f"override {text!r} is not key=value (for example training.max_steps=2).")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except (yaml.YAMLError, RecursionError):
        parsed = value
    problem = structure_problem(parsed)
    if problem:
        raise RecipeError(f"override {key} cannot be used: {problem}.")
    if isinstance(parsed, str) and _looks_like_float(parsed):
        parsed = float(parsed)  # YAML 1.1 reads "5e-4" as text; everyone means a number
    return key, parsed


def _looks_like_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().lower() not in {"nan", "inf", "-inf", "infinity", "-infinity"}


def field_paths(schema: type[BaseModel], prefix: str = "") -> list[str]:
    """Every settable dotted path of ``schema`` (nested models expanded)."""
    paths = []
    for name, info in schema.model_fields.items():
        path = f"{prefix}{name}"
        paths.append(path)
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths.extend(field_paths(annotation, f"{path}."))
    return paths


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str], schema: type[BaseModel]) -> dict[str, Any]:
    """A copy of ``raw`` with each ``key=value`` override set at its dotted path."""
    result = _deep_copy(raw)
    known = field_paths(schema)
    for text in overrides:
        key, value = parse_override(text)
        set_setting(result, _resolve_key(key, known), value, override=text)
    return result


def set_setting(raw: dict[str, Any], path: str, value: Any, *, override: str | None = None) -> None:
    """Set the dotted ``path`` (``training.max_steps``) of a raw recipe to ``value``, making sections as needed."""
    node = raw
    parts = path.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise RecipeError(f"override {override or path!r} cannot set inside {part!r}, which is not a section.")
        node = child
    node[parts[-1]] = value


def _resolve_key(key: str, known: list[str]) -> str:
    if key in known:
        return key
    if "." not in key:
        matches = [path for path in known if path.rsplit(".", 1)[-1] == key]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise RecipeError(f"override key {key!r} is ambiguous: write one of {', '.join(matches)}.")
    raise RecipeError(f"override key {key!r} is not a recipe setting (see the recipe schema for the names).")


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def load_recipe(path: str | Path, schema: type[Schema], overrides: Iterable[str] = ()) -> Schema:
    """Read, override and validate a recipe file against ``schema``."""
    raw = apply_overrides(read_recipe_file(path), overrides, schema)
    return validate_recipe(raw, schema, where=f"recipe {path}")


def validate_recipe(raw: Mapping[str, Any], schema: type[Schema], *, where: str = "recipe") -> Schema:
    try:
        return schema.model_validate(raw)
    except ValidationError as error:
        raise RecipeError(validation_error_message(error, prefix=where)) from None
