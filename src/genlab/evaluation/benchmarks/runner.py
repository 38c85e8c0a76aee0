"""Run a benchmark task on a model and report HELM-style dimensions (Liang et al., 2022).

- accuracy: multiple choice: the share of questions whose highest log-likelihood choice is right
  (``accuracy``) and the same with per-character normalisation (``acc_norm``); generation: the task's
  metric over greedy answers (``score``, named by ``metric``);
- calibration: expected calibration error of the predicted choice's probability (multiple choice);
- robustness: the same score with every question perturbed (typos, lower case, upper case);
- efficiency: seconds for the unperturbed pass and examples per second.

Scores do not depend on ``batch_size``: log-likelihoods are computed with padding that never reaches
a real token (:mod:`~genlab.evaluation.benchmarks.multiple_choice`) and generation is greedy through
the engine, whose batched answers equal its one-at-a-time answers.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from genlab.errors import InvalidValueError
from genlab.evaluation.benchmarks.calibration import expected_calibration_error
from genlab.evaluation.benchmarks.multiple_choice import ChoiceScores, score_choices
from genlab.evaluation.benchmarks.robustness import PERTURBATIONS, perturb
from genlab.evaluation.benchmarks.task import TaskRow, TaskSpec
from genlab.models.load import LoadedModel

GenerationScorer = Callable[[list[str], list[Any]], float]  # (predictions, references) -> score


@dataclass
class BenchmarkResult:
    task: str
    type: str
    n: int  # questions scored (few-shot rows excluded)
    num_fewshot: int
    metric: str  # what `score` is: "accuracy" for multiple choice, the task's metric for generation
    score: float
    accuracy: float | None  # multiple choice only
    acc_norm: float | None  # multiple choice only
    ece: float | None  # multiple choice only
    robustness: dict[str, float]  # perturbation kind -> score on perturbed questions
    seconds: float  # the unperturbed pass
    examples_per_second: float
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per scored question

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_benchmark(
    task: TaskSpec,
    loaded: LoadedModel,
    *,
    batch_size: int = 8,
    limit: int | None = None,
    robustness: Sequence[str] = ("typos", "lowercase"),
    generation_scorer: GenerationScorer | None = None,
    seed: int = 0,
) -> BenchmarkResult:
    """Score ``task`` on ``loaded``: the first ``limit`` rows after the few-shot rows.

    ``generation_scorer(predictions, references) -> float`` scores a generation task (the metric its
    ``metric`` names); ``seed`` seeds the typo perturbation.
    """
    if batch_size < 1:
        raise InvalidValueError(f"batch_size={batch_size!r} is not allowed: use 1 or more.")
    if limit is not None and limit < 1:
        raise InvalidValueError(f"limit={limit!r} is not allowed: score at least 1 question.")
    for kind in robustness:
        if kind not in PERTURBATIONS:
            raise InvalidValueError(f"robustness={kind!r} is not allowed: choose from {', '.join(PERTURBATIONS)}.")
    if task.type == "generation" and generation_scorer is None:
        raise InvalidValueError(
            f"task {task.name!r} is a generation task scored by {task.metric!r}: pass its generation_scorer."
        )
    shots, scored = task.split_rows(task.load_rows())
    scored = scored[:limit] if limit else scored
    perturbed = {kind: [_perturbed(row, kind, seed) for row in scored] for kind in robustness}
    if task.type == "multiple_choice":
        return _run_multiple_choice(task, loaded, shots, scored, perturbed, batch_size)
    assert generation_scorer is not None
    return _run_generation(task, loaded, shots, scored, perturbed, batch_size, generation_scorer)


def _perturbed(row: TaskRow, kind: str, seed: int) -> TaskRow:
    return dataclasses.replace(row, question=perturb(row.question, kind, seed))


def _run_multiple_choice(
    task: TaskSpec,
    loaded: LoadedModel,
    shots: list[TaskRow],
    rows: list[TaskRow],
    perturbed: dict[str, list[TaskRow]],
    batch_size: int,
) -> BenchmarkResult:
    def score(questions: list[TaskRow]) -> list[ChoiceScores]:
        contexts = [task.context(row, shots) for row in questions]
        choices = [row.choices for row in questions]
        return score_choices(loaded, contexts, choices, choice_prefix=task.choice_prefix, batch_size=batch_size)

    def accuracy_of(questions: list[TaskRow], scores: list[ChoiceScores]) -> float:
        return sum(s.predicted == row.answer for s, row in zip(scores, questions, strict=True)) / len(questions)

    start = time.perf_counter()
    scores = score(rows)
    seconds = time.perf_counter() - start
    correct = [s.predicted == row.answer for s, row in zip(scores, rows, strict=True)]
    accuracy = accuracy_of(rows, scores)
    robustness = {kind: accuracy_of(changed, score(changed)) for kind, changed in perturbed.items()}
    return BenchmarkResult(
        task=task.name,
        type=task.type,
        n=len(rows),
        num_fewshot=len(shots),
        metric="accuracy",
        score=accuracy,
        accuracy=accuracy,
        acc_norm=sum(s.predicted_norm == row.answer for s, row in zip(scores, rows, strict=True)) / len(rows),
        ece=expected_calibration_error([min(s.confidence, 1.0) for s in scores], correct),
        robustness=robustness,
        seconds=seconds,
        examples_per_second=len(rows) / seconds if seconds > 0 else 0.0,
        rows=[
            {
                "id": row.id,
                "question": row.question,
                "choices": list(row.choices),
                "predicted": s.predicted,
                "predicted_norm": s.predicted_norm,
                "answer": row.answer,
                "correct": right,
                "probabilities": list(s.probabilities),
                "loglikelihoods": list(s.loglikelihoods),
            }
            for row, s, right in zip(rows, scores, correct, strict=True)
        ],
    )


def _run_generation(
    task: TaskSpec,
    loaded: LoadedModel,
    shots: list[TaskRow],
    rows: list[TaskRow],
    perturbed: dict[str, list[TaskRow]],
    batch_size: int,
    scorer: GenerationScorer,
) -> BenchmarkResult:
    from genlab.generation import GenerationEngine, GenerationSettings

    engine = GenerationEngine(loaded, batch_size=batch_size)
    settings = GenerationSettings(max_new_tokens=task.max_new_tokens, stop=task.generation_stop)
    references = [row.reference if isinstance(row.reference, str) else list(row.reference or ()) for row in rows]

    def answer(questions: list[TaskRow]) -> list[str]:
        return [c.text for c in engine.generate([task.context(row, shots) for row in questions], settings)]

    with engine.hold_packed_weights():  # reordered once for the rows and their perturbed copies
        start = time.perf_counter()
        predictions = answer(rows)
        seconds = time.perf_counter() - start
        robustness = {kind: float(scorer(answer(changed), references)) for kind, changed in perturbed.items()}
    score = float(scorer(predictions, references))
    assert task.metric is not None
    return BenchmarkResult(
        task=task.name,
        type=task.type,
        n=len(rows),
        num_fewshot=len(shots),
        metric=task.metric,
        score=score,
        accuracy=None,
        acc_norm=None,
        ece=None,
        robustness=robustness,
        seconds=seconds,
        examples_per_second=len(rows) / seconds if seconds > 0 else 0.0,
        rows=[
            {"id": row.id, "question": row.question, "prediction": prediction, "reference": reference}
            for row, prediction, reference in zip(rows, predictions, references, strict=True)
        ],
    )
