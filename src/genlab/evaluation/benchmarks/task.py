"""Benchmark tasks defined in YAML: which data, how a row becomes a prompt, and how it is scored.

A task file names a JSONL data file (a path relative to the YAML file), a small Jinja prompt and the
fields of a row. Two types exist:

- ``multiple_choice``: each row has a question, a list of choices and the index (or letter) of the
  right one; the model scores every choice by its log-likelihood after the prompt (MMLU, HellaSwag,
  ARC style; :mod:`genlab.evaluation.benchmarks.multiple_choice`).
- ``generation``: each row has a question and a reference answer (or a list of them); the model
  answers greedily and a metric named by the task scores the answers.

Few-shot prompts take their solved examples from the first ``num_fewshot`` rows of the data, which
are then left out of scoring. A shot is written as in lm-evaluation-harness: the rendered prompt, the
``choice_prefix`` (its ``target_delimiter``) and the right answer; shots and the question are joined
by ``fewshot_separator`` (its ``fewshot_delimiter``, "\\n\\n").

Line numbers in messages are the data file's own line numbers, counted from 1.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from genlab.errors import GenlabError, InvalidValueError, invalid_value
from genlab.prompting.templates import PromptTemplate, TemplateError
from genlab.yaml_files import load_yaml_file

BUILTIN_DIR = Path(__file__).with_name("builtin")
PROMPT_VARIABLES = ("question", "choices")  # what a task's prompt may use
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ERROR_PREFIX = "task"  # messages read "task: num_fewshot=-1 is not allowed: ..."

TaskType = Literal["multiple_choice", "generation"]


class TaskError(GenlabError):
    """A task that cannot be found or read, or whose data has a bad row."""


class TaskFields(BaseModel):
    """Which fields of a JSONL row hold the question, the choices, the answer and the id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str = "question"
    choices: str = "choices"  # a list of strings (multiple-choice tasks only)
    answer: str = "answer"  # multiple choice: an index from 0 or a letter; generation: reference text(s)
    id: str | None = "id"  # rows without it are named "<task>:<line>"

    @field_validator("question", "choices", "answer", "id")
    @classmethod
    def _a_field_name(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("give the name of a field of the JSONL rows")
        return value


@dataclass(frozen=True)
class TaskRow:
    """One row of a task's data, read and checked."""

    id: str
    line: int  # line number in the data file, from 1
    question: str
    choices: tuple[str, ...] = ()  # multiple choice
    answer: int | None = None  # multiple choice: index into choices
    reference: str | tuple[str, ...] | None = None  # generation: the reference answer(s)

    @property
    def target(self) -> str:
        """The right answer as text (what a few-shot example shows after the prompt)."""
        if self.answer is not None:
            return self.choices[self.answer]
        if isinstance(self.reference, tuple):
            return self.reference[0]
        return self.reference or ""


class TaskSpec(BaseModel):
    """A benchmark task; ``load_task(name_or_path)`` reads one from YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    type: TaskType
    data: str = Field(min_length=1)  # JSONL file; a relative path is relative to the YAML file
    prompt: str  # Jinja, with {{ question }} and optionally {{ choices }}; rendered strictly
    choice_prefix: str = " "  # put between the prompt and an answer (the harness's target_delimiter)
    fewshot_separator: str = "\n\n"  # between shots and before the question (the harness's fewshot_delimiter)
    fields: TaskFields = TaskFields()
    num_fewshot: int = Field(default=0, ge=0, le=64)  # solved examples, taken from the first rows
    metric: str | None = None  # generation tasks: the metric's name (the caller passes its function)
    max_new_tokens: int = Field(default=32, ge=1, le=4096)  # generation tasks
    stop: tuple[str, ...] | None = None  # generation tasks; None: stop at fewshot_separator, as the harness does
    description: str = ""
    license: str = ""

    _base_dir: Path | None = PrivateAttr(default=None)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise invalid_value(error, prefix=ERROR_PREFIX) from None

    @field_validator("prompt")
    @classmethod
    def _a_prompt_template(cls, value: str) -> str:
        template = _parse_prompt(value)
        unknown = sorted(template.variables - set(PROMPT_VARIABLES))
        if unknown:
            raise ValueError(
                f"it uses {{{{ {unknown[0]} }}}}, but a prompt's variables are {' and '.join(PROMPT_VARIABLES)}"
            )
        if "question" not in template.variables:
            raise ValueError("it must show the question with {{ question }}")
        return value

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and any(s == "" for s in value):
            raise ValueError("a stop sequence cannot be empty")
        return value

    @model_validator(mode="after")
    def _metric_matches_type(self) -> TaskSpec:
        if self.type == "generation" and not self.metric:
            raise ValueError(f"task {self.name!r} is a generation task: name its metric (metric: exact_match)")
        if self.type == "multiple_choice" and self.metric:
            raise ValueError(
                f"task {self.name!r} is multiple-choice, scored by accuracy: metric applies to generation tasks only"
            )
        return self

    # --- data -----------------------------------------------------------------------------------

    @property
    def data_path(self) -> Path:
        path = Path(self.data).expanduser()
        if not path.is_absolute() and self._base_dir is not None:
            path = self._base_dir / path
        return path

    def load_rows(self) -> list[TaskRow]:
        """Every row of the data file, in file order; a bad row fails with its line number."""
        path = self.data_path
        if not path.is_file():
            raise TaskError(f"task {self.name!r}: its data file {path} does not exist.")
        rows = []
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise TaskError(f"task {self.name!r}: its data file {path} is not UTF-8 text.") from None
        for number, line in enumerate(lines, start=1):
            if line.strip():
                rows.append(self._read_row(path, number, line))
        if not rows:
            raise TaskError(f"task {self.name!r}: its data file {path} has no rows.")
        return rows

    def split_rows(self, rows: Sequence[TaskRow]) -> tuple[list[TaskRow], list[TaskRow]]:
        """(few-shot examples, rows to score): the first ``num_fewshot`` rows are the examples."""
        shots, scored = list(rows[: self.num_fewshot]), list(rows[self.num_fewshot :])
        if not scored:
            raise TaskError(
                f"task {self.name!r} has {len(rows)} rows and num_fewshot={self.num_fewshot}: no row is left to score."
            )
        return shots, scored

    def _read_row(self, path: Path, number: int, line: str) -> TaskRow:
        where = f"{path} line {number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as error:
            raise TaskError(f"{where} is not valid JSON: {error.msg}.") from None
        if not isinstance(raw, dict):
            raise TaskError(f"{where} is not a JSON object.")

        def field(name: str) -> Any:
            if name not in raw:
                raise TaskError(f"{where} has no field {name!r} (it has: {', '.join(raw) or 'none'}).")
            return raw[name]

        question = field(self.fields.question)
        if not isinstance(question, str) or not question.strip():
            raise TaskError(f"{where}: {self.fields.question!r} must be non-empty text.")
        id_name = self.fields.id
        row_id = str(raw[id_name]) if id_name and raw.get(id_name) is not None else f"{self.name}:{number}"
        if self.type == "generation":
            return TaskRow(row_id, number, question, reference=_reference(field(self.fields.answer), where))
        choices = field(self.fields.choices)
        if not isinstance(choices, list) or not all(isinstance(c, str) and c.strip() for c in choices):
            raise TaskError(f"{where}: {self.fields.choices!r} must be a list of non-empty strings.")
        if len(choices) < 2:
            raise TaskError(
                f"{where}: {self.fields.choices!r} has {len(choices)} choice(s); a question needs at least 2."
            )
        answer = _answer_index(field(self.fields.answer), len(choices), f"{where}: {self.fields.answer!r}")
        return TaskRow(row_id, number, question, tuple(choices), answer)

    # --- prompts --------------------------------------------------------------------------------

    def render(self, row: TaskRow) -> str:
        """The prompt for one row (no shots)."""
        template = _parse_prompt(self.prompt)
        values = {"question": row.question, "choices": list(row.choices)}
        return template.render(**{k: v for k, v in values.items() if k in template.variables})

    def context(self, row: TaskRow, shots: Sequence[TaskRow] = ()) -> str:
        """The text the model reads before an answer: solved shots, then the row's prompt."""
        examples = [self.render(shot) + self.choice_prefix + shot.target for shot in shots]
        return "".join(example + self.fewshot_separator for example in examples) + self.render(row)

    @property
    def generation_stop(self) -> tuple[str, ...]:
        return self.stop if self.stop is not None else (self.fewshot_separator,)


@functools.lru_cache(maxsize=64)
def _parse_prompt(source: str) -> PromptTemplate:
    try:
        return PromptTemplate("prompt", source)
    except TemplateError as error:
        raise ValueError(str(error).rstrip(".")) from None


def _answer_index(value: Any, count: int, where: str) -> int:
    if isinstance(value, str) and len(value.strip()) == 1 and value.strip().upper() in LETTERS:
        index = LETTERS.index(value.strip().upper())
    elif isinstance(value, int) and not isinstance(value, bool):
        index = value
    else:
        raise TaskError(f"{where} is {value!r}: give the index of the right choice (from 0) or its letter (A, B, ...).")
    if not 0 <= index < count:
        raise TaskError(
            f"{where} is {value!r}, out of range for {count} choices "
            f"(indices 0 to {count - 1}, letters A to {LETTERS[min(count, len(LETTERS)) - 1]})."
        )
    return index


def _reference(value: Any, where: str) -> str | tuple[str, ...]:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return tuple(value)
    raise TaskError(f"{where}: the reference answer must be non-empty text or a list of texts.")


# --- loading ------------------------------------------------------------------------------------


def builtin_task_names() -> list[str]:
    return sorted(path.stem for path in BUILTIN_DIR.glob("*.yaml"))


def load_task_file(path: str | Path) -> TaskSpec:
    """A task from its YAML file; the data path inside is relative to that file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise TaskError(f"no such task file: {path}.")
    raw = load_yaml_file(path, what="task file", error=TaskError)
    if not isinstance(raw, dict):
        raise TaskError(f"task file {path} must hold a mapping of task fields (name, type, data, prompt, ...).")
    if not all(isinstance(key, str) for key in raw):
        bad = next(key for key in raw if not isinstance(key, str))
        raise TaskError(f"task file {path} has a key that is not a field name: {bad!r}.")
    try:
        task = TaskSpec(**raw)
    except InvalidValueError as error:  # name the file rather than "task"
        raise InvalidValueError(f"task file {path}: {str(error).removeprefix(ERROR_PREFIX + ': ')}") from None
    task._base_dir = path.parent.resolve()
    return task


def load_task(name_or_path: str | Path) -> TaskSpec:
    """A builtin task by name (``everyday-facts``, or ``builtin:everyday-facts``) or a task YAML file."""
    text = str(name_or_path)
    name = text.removeprefix("builtin:")
    if name in builtin_task_names():
        return load_task_file(BUILTIN_DIR / f"{name}.yaml")
    path = Path(text).expanduser()
    if path.suffix in (".yaml", ".yml") or path.exists() or "/" in text or "\\" in text:
        return load_task_file(path)
    raise TaskError(
        f"unknown task {text!r}: use a builtin task ({', '.join(builtin_task_names())}) or a path to a task YAML file."
    )
