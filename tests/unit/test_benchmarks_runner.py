"""run_benchmark on tiny random models: what is scored, what is reported, and batch-size independence."""

import dataclasses
import json
from pathlib import Path

import pytest

from genlab.errors import InvalidValueError
from genlab.evaluation.benchmarks import (
    expected_calibration_error,
    load_task,
    perturb,
    run_benchmark,
    score_choices,
)
from genlab.models.tiny import tiny_model
from tests.unit.test_benchmarks_task import write_task
from tests.unit.test_generation import sharpen_attention

ROWS = [
    {"id": f"r{i}", "question": q, "choices": c, "answer": a}
    for i, (q, c, a) in enumerate(
        [
            ("What is frozen water called?", ["ice", "steam", "smoke"], 0),
            ("How many legs does a cat have?", ["two", "four"], 1),
            ("Which colour is grass in summer?", ["red", "blue", "green", "purple"], 2),
            ("A parcel arrived damaged. What should the agent do first?", ["apologise", "shout", "hang up"], 0),
            ("How many minutes are in an hour?", ["60", "100", "24", "12"], 0),
            ("Which star lights the Earth by day?", ["the Moon", "the Sun"], 1),
            ("What do bees make from nectar?", ["milk", "bread", "honey"], 2),
        ]
    )
]


@pytest.fixture(scope="module")
def causal():
    return sharpen_attention(tiny_model("causal", seed=7))


@pytest.fixture
def task_file(tmp_path: Path) -> Path:
    return write_task(tmp_path, rows=ROWS)


def test_result_reports_every_dimension(causal, task_file: Path) -> None:
    task = load_task(str(task_file))
    result = run_benchmark(task, causal, batch_size=4, robustness=("typos", "lowercase", "uppercase"))
    summary = json.loads(json.dumps(result.to_dict()))  # plain JSON all the way down
    assert summary["task"] == "mini" and summary["n"] == len(ROWS) and summary["metric"] == "accuracy"
    rows = summary["rows"]
    assert [r["id"] for r in rows] == [r["id"] for r in ROWS]
    for row, source in zip(rows, ROWS, strict=True):
        assert row["answer"] == source["answer"] and len(row["probabilities"]) == len(source["choices"])
        assert sum(row["probabilities"]) == pytest.approx(1.0)
        assert row["correct"] == (row["predicted"] == row["answer"])
    assert summary["accuracy"] == summary["score"] == pytest.approx(sum(r["correct"] for r in rows) / len(rows))
    assert 0.0 <= summary["acc_norm"] <= 1.0
    confidences = [max(r["probabilities"]) for r in rows]
    assert summary["ece"] == pytest.approx(expected_calibration_error(confidences, [r["correct"] for r in rows]))
    assert set(summary["robustness"]) == {"typos", "lowercase", "uppercase"}
    assert all(0.0 <= v <= 1.0 for v in summary["robustness"].values())
    assert summary["seconds"] > 0 and summary["examples_per_second"] == pytest.approx(len(ROWS) / summary["seconds"])


def test_robustness_scores_the_perturbed_questions(causal, task_file: Path) -> None:
    task = load_task(str(task_file))
    result = run_benchmark(task, causal, robustness=("uppercase",))
    rows = task.load_rows()
    # Reference: the same questions upper-cased by hand, choices untouched, scored directly.
    contexts = [task.context(dataclasses.replace(r, question=r.question.upper())) for r in rows]
    scores = score_choices(causal, contexts, [r.choices for r in rows])
    expected = sum(s.predicted == r.answer for s, r in zip(scores, rows, strict=True)) / len(rows)
    assert result.robustness == {"uppercase": pytest.approx(expected)}
    assert perturb(rows[0].question, "uppercase") == rows[0].question.upper()


def test_results_do_not_depend_on_batch_size(causal, task_file: Path) -> None:
    task = load_task(str(task_file))
    runs = [run_benchmark(task, causal, batch_size=b).to_dict() for b in (1, 3, 8)]
    for run in runs[1:]:
        for key in ("accuracy", "acc_norm", "ece", "robustness"):
            assert run[key] == pytest.approx(runs[0][key], abs=1e-5)
        for row, first in zip(run["rows"], runs[0]["rows"], strict=True):
            assert row["predicted"] == first["predicted"]
            assert row["loglikelihoods"] == pytest.approx(first["loglikelihoods"], abs=1e-5)


def test_fewshot_rows_are_examples_not_scored(causal, tmp_path: Path) -> None:
    task = load_task(str(write_task(tmp_path, rows=ROWS, num_fewshot=2)))
    result = run_benchmark(task, causal, robustness=())
    assert result.n == len(ROWS) - 2 and result.num_fewshot == 2
    assert [r["id"] for r in result.rows] == [r["id"] for r in ROWS[2:]]
    # The shots are in the context: the scores equal those of prompts that start with the two solved rows.
    rows = task.load_rows()
    contexts = [task.context(r, rows[:2]) for r in rows[2:]]
    shots = "Q: What is frozen water called?\nA: ice\n\nQ: How many legs does a cat have?\nA: four\n\n"
    assert contexts[0].startswith(shots)
    expected = score_choices(causal, contexts, [r.choices for r in rows[2:]])
    for row, scores in zip(result.rows, expected, strict=True):
        assert row["loglikelihoods"] == pytest.approx(list(scores.loglikelihoods), abs=1e-5)


def test_limit_takes_the_first_rows(causal, task_file: Path) -> None:
    result = run_benchmark(load_task(str(task_file)), causal, limit=3, robustness=())
    assert result.n == 3 and [r["id"] for r in result.rows] == ["r0", "r1", "r2"] and result.robustness == {}


def test_builtin_task_runs_on_a_seq2seq_model() -> None:
    result = run_benchmark(load_task("everyday-facts"), tiny_model("seq2seq", seed=0), limit=6)
    assert result.n == 6 and 0.0 <= result.accuracy <= 1.0 and 0.0 <= result.ece <= 1.0
    assert set(result.robustness) == {"typos", "lowercase"}


def test_generation_task_is_scored_by_the_given_metric(tmp_path: Path) -> None:
    rows = [{"question": "Capital of France?", "answer": "Paris"}, {"question": "2+2?", "answer": ["4", "four"]}]
    task = load_task(str(write_task(tmp_path, rows, type="generation", metric="exact_match", max_new_tokens=4)))
    calls = []

    def scorer(predictions, references):  # a scripted metric: records its inputs, returns a fixed value
        calls.append((list(predictions), list(references)))
        return 0.5

    loaded = tiny_model("causal", seed=0)
    result = run_benchmark(task, loaded, generation_scorer=scorer, robustness=("lowercase",))
    assert result.metric == "exact_match" and result.score == 0.5 and result.accuracy is None
    assert result.robustness == {"lowercase": 0.5}
    assert len(calls) == 2 and calls[0][1] == ["Paris", ["4", "four"]]
    assert [r["prediction"] for r in result.rows] == calls[0][0]
    assert all(isinstance(p, str) for p in calls[0][0])
    with pytest.raises(InvalidValueError, match="generation task scored by 'exact_match': pass its generation_scorer"):
        run_benchmark(task, loaded)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 0}, "batch_size=0"),
        ({"limit": 0}, "limit=0"),
        ({"robustness": ("emoji",)}, "robustness='emoji'"),
    ],
)
def test_bad_options_are_refused(causal, task_file: Path, options: dict, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        run_benchmark(load_task(str(task_file)), causal, **options)
