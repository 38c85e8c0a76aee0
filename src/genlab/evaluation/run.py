"""`genlab eval`: score a model (optionally with an adapter) on a dataset, with lineage.

Summarisation and generation tasks prompt the model through the same template and engine as the
prompt stage (greedy by default, so a score is reproducible), keep every prediction in a JSONL file
(``input``, ``reference``, ``prediction``), and compute the chosen metrics on them; re-scoring that
file with the metric library gives the same figures. Multiple-choice tasks run a benchmark
(:mod:`genlab.evaluation.benchmarks`). Efficiency (seconds, tokens/s, latency per example) is always
recorded.

``target_field`` may name several fields (``summary1,summary2,summary3``): every row keeps all its
references in the predictions file (``references``); ROUGE takes the best reference per row and
BLEU/chrF use them all. Each row also keeps its own scores (``scores``), and every aggregate score
gets a seeded 95% bootstrap interval (:mod:`genlab.evaluation.row_scores`), written beside the
predictions (``intervals.json``) and returned in :class:`EvalResult`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from genlab.atomic import atomic_write_json, atomic_write_text
from genlab.data.builtin import source_file
from genlab.errors import InvalidValueError
from genlab.evaluation.bootstrap import Interval
from genlab.evaluation.generation_metrics import score_generations
from genlab.evaluation.harness import (
    HARNESS_TASKS_DIR,
    parse_harness_tasks,
    run_harness,
    task_specs,
)
from genlab.evaluation.row_scores import (
    generation_intervals,
    mean_intervals,
    row_scores,
)
from genlab.generation import GenerationEngine, GenerationSettings
from genlab.lineage import LineageStore, Run, record_run
from genlab.models.load import LoadedModel, load_model

Task = Literal["summarize", "generate", "multiple-choice"]
TASKS = ("summarize", "generate", "multiple-choice")


@dataclass
class EvalResult:
    run_id: str
    n: int
    metrics: dict[str, float]
    predictions: str  # path of the predictions JSONL
    intervals: dict[str, list[float]] = field(default_factory=dict)  # score -> [low, high], 95% bootstrap

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(
    model: str | LoadedModel,
    data: str,
    *,
    task: Task = "summarize",
    metrics: Sequence[str] = ("rouge",),
    limit: int | None = None,
    adapter: str | None = None,
    template: str | None = None,
    shots: int = 0,
    input_field: str = "dialogue",
    target_field: str = "summary",
    settings: GenerationSettings | None = None,
    batch_size: int = 8,
    chat: bool = True,
    metric_options: dict[str, Any] | None = None,
    store: LineageStore | None = None,
) -> EvalResult:
    if task not in TASKS:
        raise InvalidValueError(f"task={task!r} is not allowed: choose one of {', '.join(TASKS)}.")
    if limit is not None and limit < 1:
        raise InvalidValueError(f"limit={limit!r} is not allowed: evaluate at least 1 example.")
    settings = settings or GenerationSettings(max_new_tokens=64)
    model_name = model if isinstance(model, str) else model.name
    adapter_path = _resolve_adapter(adapter)
    config = {
        "model": model_name, "adapter": adapter_path, "data": data, "task": task, "metrics": list(metrics),
        "limit": limit, "template": template, "shots": shots, "settings": settings.model_dump(), "chat": chat,
    }  # fmt: skip
    with record_run("eval", config, store=store) as run:  # the caller's store, if it has one open
        loaded = _load(model, adapter_path, run)
        if task == "multiple-choice":
            return _evaluate_multiple_choice(run, loaded, data, limit, batch_size)
        return _evaluate_generation(
            run, loaded, data, task, metrics, limit, template, shots, input_field, target_field, settings,
            batch_size, chat, metric_options or {},
        )  # fmt: skip


def evaluate_harness(
    model: str | LoadedModel,
    tasks: str | Sequence[str],
    *,
    adapter: str | None = None,
    include: Sequence[str] = (),
    num_fewshot: int | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    store: LineageStore | None = None,
) -> EvalResult:
    """`genlab eval --harness`: lm-eval tasks on the model (its adapter merged in), recorded as an eval run.

    Every metric lm-eval reports (with its stderr) is logged as ``TASK/METRIC``; its samples are kept
    (``harness-samples.jsonl``) beside genlab's predictions rows, whose per-row scores give the intervals.
    """
    names = parse_harness_tasks(tasks) if isinstance(tasks, str) else list(tasks)
    model_name = model if isinstance(model, str) else model.name
    adapter_path = _resolve_adapter(adapter)
    config = {
        "model": model_name, "adapter": adapter_path, "task": "harness", "harness": names,
        "harness_include": [str(Path(d).expanduser().resolve()) for d in include], "num_fewshot": num_fewshot,
        "limit": limit, "data": ",".join(names),
    }  # fmt: skip
    resolved = task_specs(names, include)  # unknown or unreachable tasks fail here, before a model loads
    with record_run("eval", config, store=store) as run:
        loaded = _load(model, adapter_path, run)
        start = time.perf_counter()
        outcome = run_harness(
            loaded, names, include=include, num_fewshot=num_fewshot, limit=limit, batch_size=batch_size, resolved=resolved
        )
        seconds = time.perf_counter() - start
        for name in names:
            for folder in (HARNESS_TASKS_DIR, *map(Path, include)):
                if (folder / f"{name}.yaml").is_file():
                    run.use(folder / f"{name}.yaml", "dataset", {"harness_task": name})
        samples_file = atomic_write_text(
            run.dir / "harness-samples.jsonl", "".join(json.dumps(s, default=str) + "\n" for s in outcome.samples)
        )
        results_file = atomic_write_json(run.dir / "harness-results.json", outcome.results)
        run.log_artifact(samples_file, "harness-samples", {"tasks": names})
        run.log_artifact(results_file, "harness-results", {"tasks": names})
        predictions_file = atomic_write_text(
            run.dir / "predictions.jsonl", "".join(json.dumps(row) + "\n" for row in outcome.rows)
        )
        run.log_artifact(predictions_file, "predictions", {"task": "harness", "harness": names})
        scores = {**outcome.metrics, "seconds": seconds}
        return _finish(run, len(outcome.rows), scores, outcome.intervals, predictions_file)


def _resolve_adapter(adapter: str | None) -> str | None:
    """The adapter's folder (``adapter`` may name one under ``$GENLAB_HOME/adapters``), before a run starts."""
    if adapter is None:
        return None
    from genlab.models.adapters import resolve_adapter

    return str(resolve_adapter(adapter))


def _load(model: str | LoadedModel, adapter: str | None, run: Run) -> LoadedModel:
    loaded = load_model(model) if isinstance(model, str) else model
    if loaded.path is not None:
        run.use(loaded.path, "model", {"model": loaded.name})
    if adapter is not None:
        from genlab.models.adapters import merge_adapter

        run.use(adapter, "adapter", {"base": loaded.name})
        loaded = merge_adapter(loaded, adapter)
    return loaded


def _evaluate_generation(
    run: Run,
    loaded: LoadedModel,
    data: str,
    task: str,
    metrics: Sequence[str],
    limit: int | None,
    template: str | None,
    shots: int,
    input_field: str,
    target_field: str,
    settings: GenerationSettings,
    batch_size: int,
    chat: bool,
    metric_options: dict[str, Any],
) -> EvalResult:
    from genlab.data.loaders import load_examples
    from genlab.prompting.chat import has_chat_template
    from genlab.prompting.icl import ExampleSelector, build_prompt
    from genlab.prompting.templates import get_template

    target_fields = parse_target_fields(target_field)
    rows = load_examples(data, input_field=input_field, target_field=target_fields[0])
    held_out = rows[:limit] if limit else rows
    references = [_references(row, target_fields) for row in held_out]
    data_path = source_file(data)
    if data_path is not None:
        run.use(data_path, "dataset", {"input_field": input_field, "target_field": target_field})
    prompt_template = get_template(template or ("summarize" if task == "summarize" else "qa"))
    chat = chat and has_chat_template(loaded.tokenizer)
    if not chat and not settings.stop and prompt_template.stop:
        settings = settings.with_overrides(stop=prompt_template.stop)
    selector = ExampleSelector(rows[len(held_out) :] or held_out) if shots > 0 else None
    built = [
        build_prompt(
            prompt_template, row, selector, shots, tokenizer=loaded.tokenizer, context_window=loaded.context_window,
            max_new_tokens=settings.max_new_tokens, chat=chat, is_encoder_decoder=loaded.is_encoder_decoder,
        )  # fmt: skip
        for row in held_out
    ]
    start = time.perf_counter()
    completions = GenerationEngine(loaded, batch_size=batch_size).generate(
        [b.text for b in built], settings, preformatted=chat
    )
    seconds = time.perf_counter() - start
    predictions = [c.text for c in completions]
    scores = score_generations(metrics, predictions, references, metric_options)
    per_row = row_scores(metrics, predictions, references, metric_options)
    intervals = generation_intervals(metrics, predictions, references, per_row)
    new_tokens = sum(c.new_tokens for c in completions)
    scores.update(
        {
            "seconds": seconds,
            "latency_per_example_s": seconds / len(held_out),
            "tokens_per_second": new_tokens / seconds if seconds > 0 else 0.0,
            "new_tokens_mean": new_tokens / len(held_out),
        }
    )
    lines = [
        json.dumps(
            {
                "id": row.id, "input": row.input, "reference": refs[0], "references": refs, "prediction": prediction,
                "scores": row_score, "prompt_tokens": b.prompt_tokens, "new_tokens": c.new_tokens,
                "shots": len(b.examples),
            }  # fmt: skip
        )
        + "\n"
        for row, refs, row_score, b, c, prediction in zip(
            held_out, references, per_row, built, completions, predictions, strict=True
        )
    ]
    predictions_file = atomic_write_text(run.dir / "predictions.jsonl", "".join(lines))
    run.log_artifact(predictions_file, "predictions", {"task": task, "n": len(held_out)})
    return _finish(run, len(held_out), scores, intervals, predictions_file)


def _finish(run: Run, n: int, scores: dict[str, float], intervals: dict[str, Interval], predictions_file: Any) -> EvalResult:
    """Record the scores and their intervals (``intervals.json``, beside the predictions) and build the result."""
    bounds = {name: interval.to_list() for name, interval in intervals.items()}
    intervals_file = atomic_write_json(run.dir / "intervals.json", {"confidence": 0.95, "intervals": bounds})
    run.log_artifact(intervals_file, "intervals", {"n": n})
    run.log_metrics(scores)
    return EvalResult(run.id, n, scores, str(predictions_file), bounds)


def parse_target_fields(text: str) -> list[str]:
    """``summary1,summary2,summary3`` -> the reference fields, first one first; one sentence if none is named."""
    fields = [name.strip() for name in text.split(",")]
    if not text.strip() or not all(fields) or len(set(fields)) != len(fields):
        raise InvalidValueError(
            f"target_field={text!r} is not allowed: name one field, or several distinct ones separated by commas."
        )
    return fields


def _references(row: Any, target_fields: Sequence[str]) -> list[str]:
    """Every reference of a row, in the order of ``target_fields``; a missing or blank one is named."""
    references = [row.target or ""]
    for name in target_fields[1:]:
        value = row.fields.get(name)
        if not isinstance(value, str) or not value.strip():
            raise InvalidValueError(f"row {row.id!r} has no text in reference field {name!r}.")
        references.append(value)
    return references


def _evaluate_multiple_choice(run: Run, loaded: LoadedModel, data: str, limit: int | None, batch_size: int) -> EvalResult:
    from genlab.evaluation.benchmarks import load_task, run_benchmark

    task = load_task(data)
    run.use(task.data_path, "dataset", {"benchmark": task.name})
    result = run_benchmark(task, loaded, batch_size=batch_size, limit=limit)
    scores = {
        name: float(value)
        for name, value in {"accuracy": result.accuracy, "acc_norm": result.acc_norm, "ece": result.ece}.items()
        if value is not None
    }
    scores.update({f"robustness_{kind}": float(value) for kind, value in result.robustness.items()})
    scores.update({"seconds": result.seconds, "examples_per_second": result.examples_per_second})
    prediction_rows = [_prediction_row(row) for row in result.rows]
    lines = [json.dumps(row) + "\n" for row in prediction_rows]
    predictions_file = atomic_write_text(run.dir / "predictions.jsonl", "".join(lines))
    run.log_artifact(predictions_file, "predictions", {"task": "multiple-choice", "benchmark": task.name})
    intervals = mean_intervals([row["scores"] for row in prediction_rows])
    return _finish(run, result.n, scores, intervals, predictions_file)


def _prediction_row(row: dict[str, Any]) -> dict[str, Any]:
    """A benchmark row in the predictions format: the question, the right choice and the chosen one."""
    choices = row["choices"]
    scores = {"accuracy": float(row["correct"]), "acc_norm": float(row["predicted_norm"] == row["answer"])}
    return {
        "id": row["id"], "input": row["question"], "reference": choices[row["answer"]],
        "prediction": choices[row["predicted"]], "scores": scores,
        **{k: v for k, v in row.items() if k not in ("id", "question")},
    }  # fmt: skip
