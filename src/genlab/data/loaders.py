"""Load text examples from JSONL, JSON, CSV, Parquet, a hub dataset or genlab's builtin dialogue sets.

Every source ends as a list of :class:`~genlab.data.example.Example`: one field is the input, one the
target, one (optionally) the id, and the rest ride along in ``Example.fields``. Files and hub datasets
are read with the ``datasets`` library; genlab adds what it leaves out: a malformed JSONL line is
reported by its line number, a missing field lists the fields that exist, and an empty value names
its row and field. Offline, a hub id fails within seconds (:func:`genlab.models.hub.ensure_hub_reachable`)
instead of after the hub client's retries.

Row numbers in messages count data rows from 1, in file order. For JSONL that is the line number
counting only non-blank lines (the file's own line number when it has no blank lines); for a JSON
array it is the item's position; for CSV it is the line number minus the header line (when no cell
spans lines); for Parquet and hub datasets it is the row's position in the file or split.
"""

from __future__ import annotations

import itertools
import json
import math
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab.data.builtin import builtin_dialogues, builtin_heated_dialogues
from genlab.data.example import Example
from genlab.errors import GenlabError, InvalidValueError
from genlab.models.hub import ensure_hub_reachable, looks_like_hub_id

# File suffix -> the `datasets` packaged builder that reads it.
FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
# Builtin source name -> (its rows, the prefix in its error messages).
BUILTIN_LOADERS = {
    "builtin": (builtin_dialogues, "builtin"),
    "builtin:dialogues": (builtin_dialogues, "builtin"),
    "builtin:heated": (builtin_heated_dialogues, "builtin:heated"),
}
BUILTIN_SOURCES = tuple(BUILTIN_LOADERS)
AUTO_ID_FIELDS = ("id", "fname")  # used as Example.id when present and no id_field is given
SUPPORTED_FILES = ", ".join(list(FILE_BUILDERS)[:-1]) + f" or {list(FILE_BUILDERS)[-1]}"  # for messages


class DataError(GenlabError):
    """A data file or dataset that cannot be read, or does not hold the fields and values asked for."""


def _not_allowed(name: str, value: Any, rule: str) -> InvalidValueError:
    return InvalidValueError(f"{name}={value!r} is not allowed: {rule}.")


@dataclass(frozen=True)
class FieldMapping:
    """Which columns of a source become an Example's input, target and id."""

    input_field: str = "dialogue"  # the DialogSum column names are the defaults: the course's dataset
    target_field: str | None = "summary"  # None: the data has no reference output (Example.target is None)
    id_field: str | None = None  # None: use an "id" or "fname" column if there is one, else "<source>:<row>"
    require_target: bool = True  # False: an empty target gives Example.target=None instead of an error

    def __post_init__(self) -> None:
        for name in ("input_field", "target_field", "id_field"):
            value = getattr(self, name)
            if value is None and name != "input_field":
                continue
            if not isinstance(value, str) or not value.strip():
                raise _not_allowed(name, value, "give a column name")
        if self.target_field == self.input_field:
            raise _not_allowed("target_field", self.target_field, "it must differ from input_field")
        if self.id_field is not None and self.id_field in (self.input_field, self.target_field):
            raise _not_allowed("id_field", self.id_field, "it must differ from input_field and target_field")

    def named_fields(self) -> list[str]:
        return [name for name in (self.input_field, self.target_field, self.id_field) if name is not None]


def load_examples(
    source: str | Path,
    *,
    input_field: str = "dialogue",
    target_field: str | None = "summary",
    id_field: str | None = None,
    split: str = "train",
    limit: int | None = None,
    require_target: bool = True,
) -> list[Example]:
    """Load ``source`` as Examples, mapping ``input_field``/``target_field``/``id_field`` onto each row.

    ``source`` is ``"builtin"`` (genlab's 64 demo dialogues), ``"builtin:heated"`` (heated dialogues with
    profanity and neutral summaries, for the detoxification lab), a ``.jsonl``/``.json``/``.csv``/``.parquet``
    file, or a hub dataset id (``owner/name``, whose ``split`` is loaded; ``split`` is ignored for
    files, which are one split each). ``limit`` keeps the first N rows; rows after them are neither
    validated nor returned. A missing, ``None`` or blank input (or target, when ``require_target``)
    raises :class:`DataError` naming the row number (see the module docstring) and the field.
    """
    mapping = FieldMapping(input_field, target_field, id_field, require_target)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise _not_allowed("limit", limit, "give a row count of at least 1, or none for all rows")

    text = str(source)
    if text in BUILTIN_LOADERS:
        builtin_rows, label = BUILTIN_LOADERS[text]
        rows = builtin_rows()
        return _examples_from_rows(rows, list(rows[0]), mapping, label=label, id_prefix=label, limit=limit)
    if text.startswith("builtin:"):
        raise DataError(f"there is no builtin dataset {text!r}; the builtin ones are: {', '.join(BUILTIN_SOURCES)}.")

    path = Path(source)
    suffix = path.suffix.lower()
    if suffix in FILE_BUILDERS:
        if not path.is_file():
            raise DataError(f"no such data file: {path}")
        return _load_file(path, mapping, limit)
    if path.exists() or (suffix and not looks_like_hub_id(text)):
        raise DataError(f"cannot read {path}: data files must end in {SUPPORTED_FILES}.")
    if looks_like_hub_id(text):
        return _load_hub(text, split, mapping, limit)
    raise DataError(f"no such data file or hub dataset: {text} (a hub dataset id looks like owner/name).")


def _datasets():
    """Import `datasets` on first use (it takes about a second) with its progress bars turned off."""
    import datasets

    datasets.utils.logging.disable_progress_bar()
    return datasets


def _load_file(path: Path, mapping: FieldMapping, limit: int | None) -> list[Example]:
    if path.stat().st_size == 0:  # `datasets` meets an empty file with a bare StopIteration
        raise DataError(f"{path} is empty: a data file needs at least one row.")
    if FILE_BUILDERS[path.suffix.lower()] == "json":
        check_json_file(path)
    datasets = _datasets()
    # A throwaway cache: local files are re-read each time (cheap, never stale) and leave nothing behind.
    with tempfile.TemporaryDirectory(prefix="genlab-data-") as cache:
        try:
            table = datasets.load_dataset(
                FILE_BUILDERS[path.suffix.lower()], data_files=str(path), split="train", cache_dir=cache
            )
        except (ValueError, OSError, datasets.exceptions.DatasetGenerationError) as error:
            reason = error.__cause__ or error
            if "corresponds to no data" in str(reason):  # `datasets` on a CSV with only its header line
                raise DataError(f"{path} holds no rows: a data file needs at least one row.") from None
            first_line = (str(reason).strip().splitlines() or [type(reason).__name__])[0]
            raise DataError(f"cannot read {path}: {first_line}") from None
        if table.num_rows == 0:
            raise DataError(f"{path} holds no rows: a data file needs at least one row.")
        return _examples_from_rows(
            table, table.column_names, mapping, label=str(path), id_prefix=path.stem, limit=limit
        )


def check_json_file(path: Path) -> None:
    """Raise :class:`DataError` at the first line of ``path`` that is not a JSON object (JSONL or a JSON array)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text.") from None
    if text.lstrip().startswith("["):  # a JSON array of objects, as a .json file may hold
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(f"{path} line {error.lineno} is not valid JSON: {error.msg}.") from None
        if not isinstance(items, list) or not items:
            raise DataError(f"{path} holds no rows: a JSON file needs an array of at least one object.")
        for number, item in enumerate(items, start=1):
            if not isinstance(item, dict):
                raise DataError(f"{path} item {number} is not a JSON object (it is a {type(item).__name__}).")
        return
    if not text.strip():
        raise DataError(f"{path} holds no rows: it has only blank lines.")
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            reason = f"{error.msg} (column {error.colno})"
            raise DataError(f"{path} line {line_number} is not valid JSON: {reason}.") from None
        if not isinstance(row, dict):
            raise DataError(f"{path} line {line_number} is not a JSON object (it is a {type(row).__name__}).")


def _load_hub(name: str, split: str, mapping: FieldMapping, limit: int | None) -> list[Example]:
    # Offline: one sentence within seconds, not the hub client's retries.
    ensure_hub_reachable(name, hint=f"use a local {SUPPORTED_FILES} file or 'builtin' instead")
    datasets = _datasets()
    try:
        splits = datasets.get_dataset_split_names(name)
        if split not in splits:
            listed = ", ".join(splits)
            raise DataError(f"the hub dataset {name} has no split {split!r}; its splits are: {listed}.")
        table = datasets.load_dataset(name, split=split)
    except datasets.exceptions.DatasetNotFoundError:
        raise DataError(
            f"there is no dataset {name!r} on the hub (or it is private or gated: set HF_TOKEN)."
        ) from None
    id_prefix = f"{name.rsplit('/', 1)[-1]}-{split}"
    label = f"{name}[{split}]"
    return _examples_from_rows(table, table.column_names, mapping, label=label, id_prefix=id_prefix, limit=limit)


def _examples_from_rows(
    rows: Iterable[dict[str, Any]],
    columns: Sequence[str],
    mapping: FieldMapping,
    *,
    label: str,
    id_prefix: str,
    limit: int | None,
) -> list[Example]:
    """Map and validate the first ``limit`` rows; ``label`` names the source in error messages."""
    columns = list(columns)
    for name in mapping.named_fields():
        if name not in columns:
            raise DataError(f"{label} has no field {name!r}; its fields are: {', '.join(columns)}.")
    id_field = mapping.id_field
    if id_field is None:
        taken = (mapping.input_field, mapping.target_field)
        id_field = next((name for name in AUTO_ID_FIELDS if name in columns and name not in taken), None)
    mapped = {mapping.input_field, mapping.target_field, id_field} - {None}

    examples: list[Example] = []
    first_row_of_id: dict[str, int] = {}
    for row_number, row in enumerate(itertools.islice(rows, limit), start=1):

        def text_of(field: str, required: bool) -> str | None:
            return _text_value(row.get(field), field=field, required=required, where=f"{label} row {row_number}")

        example_id = text_of(id_field, True) if id_field else f"{id_prefix}:{row_number}"
        if example_id in first_row_of_id:
            raise DataError(
                f"{label} rows {first_row_of_id[example_id]} and {row_number} share the id {example_id!r}; "
                "ids must be unique."
            )
        first_row_of_id[example_id] = row_number
        examples.append(
            Example(
                id=example_id,
                input=text_of(mapping.input_field, True),
                target=text_of(mapping.target_field, mapping.require_target) if mapping.target_field else None,
                fields={key: value for key, value in row.items() if key not in mapped},
            )
        )
    return examples


def _text_value(value: Any, *, field: str, required: bool, where: str) -> str | None:
    """The value as text; None (or DataError when ``required``) if it is missing, NaN or blank."""
    if isinstance(value, float) and math.isnan(value):  # an empty CSV cell in a numeric column
        value = None
    if isinstance(value, (int, float)):  # e.g. a numeric CSV column used as id or answer
        value = str(value)
    if value is not None and not isinstance(value, str):
        raise DataError(f"{where}: field {field!r} holds a {type(value).__name__}, not text.")
    if value is None or not value.strip():
        if required:
            raise DataError(f"{where}: field {field!r} is empty.")
        return None
    return value
