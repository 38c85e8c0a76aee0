"""`genlab eval`: score a model (optionally with an adapter) on a dataset, with lineage.

Summarisation and generation tasks prompt the model through the same template and engine as the
prompt stage (greedy by default, so a score is reproducible), keep every prediction in a JSONL file
(``input``, ``reference``, ``prediction``), and compute the chosen metrics on them; re-scoring that
file with the metric library gives the same figures. Multiple-choice tasks run a benchmark
(:mod:`genlab.evaluation.benchmarks`). Efficiency (seconds, tokens/s, latency per example) is always
recorded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from genlab.atomic import atomic_write_text
from genlab.data.builtin import source_file
from genlab.errors import InvalidValueError
from genlab.evaluation.generation_metrics import score_generations
from genlab.generation import GenerationEngine, GenerationSettings
from genlab.lineage import Run, record_run
from genlab.models.load import LoadedModel, load_model

Task = Literal["summarize", "generate", "multiple-choice"]
TASKS = ("summarize", "generate", "multiple-choice")


@dataclass
class EvalResult:
    run_id: str
    n: int
    metrics: dict[str, float]
    predictions: str  # path of the predictions JSONL

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
    with record_run("eval", config) as run:
        loaded = _load(model, adapter_path, run)
        if task == "multiple-choice":
            return _evaluate_multiple_choice(run, loaded, data, limit, batch_size)
        return _evaluate_generation(
            run, loaded, data, task, metrics, limit, template, shots, input_field, target_field, settings,
            batch_size, chat, metric_options or {},
        )  # fmt: skip


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

    rows = load_examples(data, input_field=input_field, target_field=target_field)
    held_out = rows[:limit] if limit else rows
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
    references = [row.target or "" for row in held_out]
    scores = score_generations(metrics, predictions, references, metric_options)
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
                "id": row.id, "input": row.input, "reference": row.target, "prediction": prediction,
                "prompt_tokens": b.prompt_tokens, "new_tokens": c.new_tokens, "shots": len(b.examples),
            }  # fmt: skip
        )
        + "\n"
        for row, b, c, prediction in zip(held_out, built, completions, predictions, strict=True)
    ]
    predictions_file = atomic_write_text(run.dir / "predictions.jsonl", "".join(lines))
    run.log_artifact(predictions_file, "predictions", {"task": task, "n": len(held_out)})
    run.log_metrics(scores)
    return EvalResult(run.id, len(held_out), scores, str(predictions_file))


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
    lines = [json.dumps(_prediction_row(row)) + "\n" for row in result.rows]
    predictions_file = atomic_write_text(run.dir / "predictions.jsonl", "".join(lines))
    run.log_artifact(predictions_file, "predictions", {"task": "multiple-choice", "benchmark": task.name})
    run.log_metrics(scores)
    return EvalResult(run.id, result.n, scores, str(predictions_file))


def _prediction_row(row: dict[str, Any]) -> dict[str, Any]:
    """A benchmark row in the predictions format: the question, the right choice and the chosen one."""
    choices = row["choices"]
    return {
        "id": row["id"], "input": row["question"], "reference": choices[row["answer"]],
        "prediction": choices[row["predicted"]], **{k: v for k, v in row.items() if k not in ("id", "question")},
    }  # fmt: skip
