"""Batch transform: generate for every row of a JSONL file, resumably, with lineage.

``run_batch(BatchConfig(model=..., input=..., output=...))`` reads the input
(:mod:`genlab.serving.batch_input`), checks every row it still has to do (settings, chat format,
prompt length against the context window), writes the bad ones to ``<output>.errors.jsonl`` with
their line numbers, and generates the rest in input order through the generation engine: the engine
keeps ``batch_size`` rows decoding at once and gives a finished row's slot to the next row of the
chunk (continuous batching); each chunk of ``rows_per_write`` rows is appended to the output durably
when done (:mod:`genlab.serving.batch_output`). An interrupted batch (Ctrl-C, ``kill -9``) continues
where it stopped when run again with the same arguments.

Output rows, one per good input row, in input order::

    {"custom_id": "a1", "line": 1, "text": "...", "finish_reason": "stop", "prompt_tokens": 31, "completion_tokens": 12}

Greedy rows (temperature 0, the default) give the same text however the rows are chunked, so a
resumed batch holds what an uninterrupted one would have.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from genlab.errors import GenlabError, invalid_value
from genlab.generation.engine import GenerationEngine
from genlab.generation.settings import GenerationSettings
from genlab.serving.batch_input import BadRow, BatchRow, read_rows
from genlab.serving.batch_output import OutputAppender, errors_path, open_output

ChunkHook = Callable[[int, int], None]  # (chunks done in this run, rows done in this run)


class BatchConfig(BaseModel):
    """What ``genlab batch`` runs; the defaults are those of ``genlab generate``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = "smollm2-135m-instruct"  # pack name, model folder, GGUF file or hub id
    input: Path  # JSONL rows with a prompt or messages
    output: Path  # JSONL results, appended chunk by chunk
    adapter: str | None = None  # a peft adapter folder, or a name in $GENLAB_HOME/adapters
    batch_size: int = Field(default=8, ge=1, le=1024)  # rows decoded at once by the engine
    # Rows generated between two durable appends: a few engine batches, so a row that finishes early
    # hands its slot to the next one (continuous batching); an interruption loses at most this many.
    rows_per_write: int | None = Field(default=None, ge=1)
    max_tokens: int = Field(default=256, ge=1, le=32_768)  # per row, unless the row says otherwise
    temperature: float = Field(default=0.0, ge=0.0, le=100.0)  # 0 = greedy: resumed == uninterrupted
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0)
    seed: int | None = Field(default=None, ge=0)  # sampling rows without a seed get seed + line number
    chat: bool = True  # wrap a row's prompt in the model's chat template (messages always are)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise invalid_value(error, prefix="batch") from None

    @field_validator("input")
    @classmethod
    def _input_is_a_file(cls, value: Path) -> Path:
        value = value.expanduser()
        if not value.is_file():
            raise ValueError("no such input file")
        return value.resolve()

    @field_validator("output")
    @classmethod
    def _output_is_a_file_path(cls, value: Path) -> Path:
        value = value.expanduser().resolve()
        if value.is_dir():
            raise ValueError("it is a folder; give a file name such as results.jsonl")
        return value

    @model_validator(mode="after")
    def _output_is_not_the_input(self) -> BatchConfig:
        if self.output == self.input:
            raise ValueError("the output file cannot be the input file")
        return self

    @property
    def write_every(self) -> int:
        return self.rows_per_write or 4 * self.batch_size

    def default_settings(self) -> GenerationSettings:
        return GenerationSettings(
            max_new_tokens=self.max_tokens, temperature=self.temperature, top_p=self.top_p, top_k=self.top_k
        )


@dataclass(frozen=True)
class BatchSummary:
    output: Path
    errors_file: Path | None  # None when every row was good
    rows: int  # non-blank input lines
    done: int  # rows in the output now
    generated: int  # rows this run generated (done - resumed)
    resumed: int  # rows found done in the output, skipped
    errors: int  # bad rows, listed in errors_file
    bad_rows: list[BadRow]
    prompt_tokens: int  # of the rows this run generated
    completion_tokens: int
    seconds: float  # generation time of this run
    run_id: str

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class _Prepared:
    row: BatchRow
    text: str  # what the engine reads: chat-formatted, or the plain prompt
    formatted: bool  # text holds the chat template's special tokens


def run_batch(config: BatchConfig, *, progress: bool = True, on_chunk: ChunkHook | None = None) -> BatchSummary:
    """Run (or continue) the batch transform described by ``config``; see the module docstring.

    ``on_chunk`` is called after each durable append (tests use it to interrupt a run).
    """
    from genlab import __version__
    from genlab.lineage import record_run
    from genlab.lineage.hashing import sha256_file

    good, bad = read_rows(config.input, config.default_settings(), base_seed=config.seed)
    rows = len(good) + len(bad)
    adapter = _resolve_adapter(config.adapter)
    input_hash = sha256_file(config.input)
    settings = config.model_dump(mode="json", include={"max_tokens", "temperature", "top_p", "top_k", "seed", "chat"})
    state = {
        "input": str(config.input), "input_sha256": input_hash, "model": _model_identity(config.model),
        "adapter": adapter, **settings, "format": 1,
    }  # fmt: skip
    resume = open_output(config.output, state)
    unknown = resume.done - {row.key for row in good}
    if unknown:
        raise GenlabError(
            f"{config.output} holds {len(unknown)} rows that are not in {config.input}; choose another output file."
        )
    run_config = {**state, "output": str(config.output), "batch_size": config.batch_size, "genlab_version": __version__}
    with record_run("batch", run_config) as run:
        run.use(config.input, "dataset", {"format": "jsonl", "rows": rows})
        engine = GenerationEngine(_load(config.model, adapter, run), batch_size=config.batch_size)
        todo = [row for row in good if row.key not in resume.done]
        prepared, too_long = _prepare(engine, todo, chat=config.chat)
        bad = sorted([*bad, *too_long], key=lambda b: b.line)
        errors_file = _write_errors(config.output, bad)
        with engine.hold_packed_weights():  # reordered once for all the chunks
            tokens, seconds = _generate(
                engine, prepared, config, already=len(resume.done), progress=progress, on_chunk=on_chunk
            )
        generated = len(prepared)
        run.log_artifact(config.output, "batch-output", {"rows": len(resume.done) + generated})
        if errors_file is not None:
            run.log_artifact(errors_file, "batch-errors", {"rows": len(bad)})
        run.log_metrics({
            "rows": rows, "done": len(resume.done) + generated, "generated": generated,
            "resumed": len(resume.done), "errors": len(bad), "prompt_tokens": tokens[0],
            "completion_tokens": tokens[1], "seconds": seconds,
        })  # fmt: skip
    return BatchSummary(
        output=config.output, errors_file=errors_file, rows=rows,
        done=len(resume.done) + generated, generated=generated, resumed=len(resume.done), errors=len(bad),
        bad_rows=bad, prompt_tokens=tokens[0], completion_tokens=tokens[1], seconds=seconds, run_id=run.id,
    )  # fmt: skip


def _model_identity(model: str) -> str:
    """A local model as its absolute path (the same folder named two ways is one model), else its name."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def _resolve_adapter(adapter: str | None) -> str | None:
    if adapter is None:
        return None
    from genlab.models.adapters import resolve_adapter

    return str(resolve_adapter(adapter))


def _load(model: str, adapter: str | None, run: Any) -> Any:
    from genlab.models.load import load_model

    loaded = load_model(model)
    if loaded.path is not None:
        run.use(loaded.path, "model", {"model": loaded.name})
    if adapter is not None:
        from genlab.models.adapters import merge_adapter

        run.use(adapter, "adapter", {"base": loaded.name})
        loaded = merge_adapter(loaded, adapter)
    return loaded


def _prepare(engine: GenerationEngine, rows: list[BatchRow], *, chat: bool) -> tuple[list[_Prepared], list[BadRow]]:
    """Format and measure each row; a row that cannot be formatted or does not fit the window is bad."""
    from genlab.prompting.chat import format_chat

    prepared, bad = [], []
    for row in rows:
        try:
            if row.messages is not None:
                text, formatted = format_chat(engine.loaded.tokenizer, row.messages), True
            else:
                assert row.prompt is not None
                text = engine.format_prompt(row.prompt, chat=chat)
                formatted = text != row.prompt
            tokens = len(engine.encode(text, formatted_chat=formatted))
            engine.check_fits(tokens, row.settings.max_new_tokens, "the prompt")
        except GenlabError as error:
            bad.append(BadRow(row.line, str(error).replace("max_new_tokens", "max_tokens"), row.raw))
            continue
        prepared.append(_Prepared(row, text, formatted))
    return prepared, bad


def _write_errors(output: Path, bad: list[BadRow]) -> Path | None:
    """All bad rows, rewritten whole on every run (a rerun finds the same ones): never duplicated."""
    from genlab.atomic import atomic_write_text

    path = errors_path(output)
    if not bad:
        path.unlink(missing_ok=True)  # a stale file from an earlier, different run
        return None
    atomic_write_text(path, "".join(json.dumps(b.to_record(), ensure_ascii=False) + "\n" for b in bad))
    return path


def _generate(
    engine: GenerationEngine,
    prepared: list[_Prepared],
    config: BatchConfig,
    *,
    already: int,
    progress: bool,
    on_chunk: ChunkHook | None,
) -> tuple[tuple[int, int], float]:
    """Generate chunk by chunk, appending each; returns (prompt, completion) tokens and seconds."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    prompt_tokens = completion_tokens = 0
    start = time.perf_counter()
    columns = (TextColumn("batch"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with (
        Progress(*columns, console=Console(stderr=True), disable=not progress) as bar,
        OutputAppender(config.output) as out,
    ):
        task = bar.add_task("rows", total=already + len(prepared), completed=already)  # resumed rows count as done
        for index, begin in enumerate(range(0, len(prepared), config.write_every)):
            chunk = prepared[begin : begin + config.write_every]
            records = _generate_chunk(engine, chunk)
            out.append(records)
            prompt_tokens += sum(r["prompt_tokens"] for r in records)
            completion_tokens += sum(r["completion_tokens"] for r in records)
            bar.advance(task, len(chunk))
            if on_chunk is not None:
                on_chunk(index + 1, begin + len(chunk))
    return (prompt_tokens, completion_tokens), time.perf_counter() - start


def _generate_chunk(engine: GenerationEngine, chunk: list[_Prepared]) -> list[dict[str, Any]]:
    """One output record per row of ``chunk``, in its order.

    Chat-formatted texts and plain prompts are encoded differently (a plain prompt gets the
    tokenizer's own special tokens), so each kind goes through the engine in its own call.
    """
    records: dict[int, dict[str, Any]] = {}
    for formatted in (True, False):
        part = [p for p in chunk if p.formatted == formatted]
        if not part:
            continue
        completions = engine.generate(
            [p.text for p in part], [p.row.settings for p in part], chat=False, preformatted=formatted
        )
        for p, completion in zip(part, completions, strict=True):
            choice = completion.choices[0]
            records[p.row.line] = {
                "custom_id": p.row.custom_id,
                "line": p.row.line,
                "text": choice.text,
                "finish_reason": choice.finish_reason,
                "prompt_tokens": completion.prompt_tokens,
                "completion_tokens": len(choice.token_ids),
            }
    return [records[p.row.line] for p in chunk]
