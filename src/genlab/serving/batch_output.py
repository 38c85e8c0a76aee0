"""Batch transform output: a JSONL file appended durably, read back to resume after an interruption.

A batch transform may run for hours, so its output cannot be written once at the end (atomically)
like other artifacts. Instead every finished chunk of rows is appended in one write, then flushed
and fsync'ed: after a crash or ``kill -9`` the file holds whole chunks, except perhaps a torn last
line if the machine died inside the write. On restart :func:`open_output` drops that torn line and
returns the rows already done, so the rerun skips them: no duplicated and no missing row.

Beside the output sits ``<output>.state.json`` (written atomically) with the SHA-256 of the input and
the settings that produced the output. A rerun against a different input or with other settings is
refused: appending to the old rows would mix answers of two batches in one file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab.atomic import atomic_write_json
from genlab.errors import GenlabError
from genlab.serving.batch_input import RowKey, row_key


class BatchOutputError(GenlabError):
    """An output file that cannot be continued: another input's, other settings', or corrupt."""


def state_path(output: Path) -> Path:
    return output.with_name(output.name + ".state.json")


def errors_path(output: Path) -> Path:
    """``out.jsonl`` -> ``out.errors.jsonl`` (any other name gets ``.errors.jsonl`` added)."""
    stem = output.name.removesuffix(".jsonl")
    return output.with_name(f"{stem}.errors.jsonl")


@dataclass(frozen=True)
class ResumePoint:
    done: set[RowKey]  # rows already in the output
    dropped_bytes: int  # the torn last line's length, 0 if the file ended cleanly


def open_output(output: Path, state: dict[str, Any]) -> ResumePoint:
    """Check that ``output`` may be continued for this ``state`` and return what it already holds.

    A missing output starts a new batch; an existing one needs a matching state file. The state is
    then (re)written so that an interruption from here on is recognised by the next run.
    """
    previous = _read_state(output)
    if output.exists() and output.stat().st_size > 0:
        if previous is None:
            raise BatchOutputError(
                f"{output} already exists and has no {state_path(output).name} saying which batch wrote it; "
                "choose another output file or delete it."
            )
        _refuse_other_batch(output, previous, state)
    point = ResumePoint(set(), 0)
    if output.exists():
        point = _read_done(output)
    atomic_write_json(state_path(output), state)
    return point


def _read_state(output: Path) -> dict[str, Any] | None:
    path = state_path(output)
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BatchOutputError(f"{path} is corrupt; delete it and {output.name} to start the batch again.") from None
    return state if isinstance(state, dict) else None


def _refuse_other_batch(output: Path, previous: dict[str, Any], state: dict[str, Any]) -> None:
    if previous.get("input_sha256") != state["input_sha256"]:
        raise BatchOutputError(
            f"{output} belongs to a different input ({previous.get('input')}, sha256 "
            f"{str(previous.get('input_sha256'))[:12]}) than {state['input']} (sha256 {state['input_sha256'][:12]}); "
            "choose another output file, or delete it and its .state.json to start again."
        )
    for field in sorted(set(previous) | set(state)):
        if field in ("input", "input_sha256"):
            continue
        if previous.get(field) != state.get(field):
            raise BatchOutputError(
                f"{output} was written with {field}={previous.get(field)!r}, not {state.get(field)!r}; "
                "rerun with the same arguments to continue it, or choose another output file."
            )


def _read_done(output: Path) -> ResumePoint:
    data = output.read_bytes()
    end = data.rfind(b"\n") + 1  # everything after the last newline is a torn line
    dropped = len(data) - end
    if dropped:
        with open(output, "r+b") as handle:
            handle.truncate(end)
            handle.flush()
            os.fsync(handle.fileno())
    done: set[RowKey] = set()
    for number, raw in enumerate(data[:end].splitlines(), start=1):
        try:
            record = json.loads(raw)
            key = row_key(record["custom_id"], int(record["line"]))
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError):
            raise BatchOutputError(
                f"line {number} of {output} is not a batch output row; the file was edited or damaged, "
                "so it cannot be continued (choose another output file)."
            ) from None
        done.add(key)
    return ResumePoint(done, dropped)


class OutputAppender:
    """Append rows to the output JSONL; each :meth:`append` is durable when it returns."""

    def __init__(self, output: Path) -> None:
        created = not output.exists()
        self._handle = open(output, "ab")  # noqa: SIM115 - held open across chunks, closed in close()
        if created:  # the new file's name must survive a crash too
            _fsync_directory(output.parent)

    def append(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        data = b"".join(json.dumps(r, ensure_ascii=False).encode("utf-8") + b"\n" for r in records)
        self._handle.write(data)
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> OutputAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fsync_directory(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
