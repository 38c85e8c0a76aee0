"""`genlab compare` on runs recorded with per-row scores: intervals per run, the paired interval of the
difference (and "not distinguishable from noise" when it spans zero), different row sets refused."""

import json

import pytest
from typer.testing import CliRunner

from genlab.atomic import atomic_write_text
from genlab.cli import app
from genlab.evaluation.compare import compare_runs
from genlab.evaluation.paired import NOISE, different_rows
from genlab.lineage import record_run


def recorded_run(scores: list[float], ids: list[str] | None = None) -> str:
    """An eval run whose predictions rows carry a rouge1 per row (as `genlab eval` writes them)."""
    ids = ids or [f"row-{i}" for i in range(len(scores))]
    with record_run("eval", {"model": "scripted", "data": "rows"}) as run:
        rows = [{"id": i, "input": f"text {i}", "reference": "r", "prediction": "p", "scores": {"rouge1": s}}
                for i, s in zip(ids, scores)]  # fmt: skip
        path = atomic_write_text(run.dir / "predictions.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        run.log_artifact(path, "predictions")
        run.log_metrics({"rouge1": sum(scores) / len(scores)})
    return run.id


BASE = [0.2, 0.3, 0.25, 0.4, 0.1, 0.35, 0.3, 0.2, 0.15, 0.3]


def test_a_steady_gain_is_not_noise_and_a_reshuffle_is() -> None:
    base = recorded_run(BASE)
    better = recorded_run([s + 0.05 for s in BASE])
    reshuffled = recorded_run(BASE[5:] + BASE[:5])  # the same scores on other rows
    comparison = compare_runs([base, better, reshuffled], report=False)
    gain, shuffle = comparison.paired["rouge1"][1], comparison.paired["rouge1"][2]
    assert gain["difference"] == pytest.approx(0.05) and gain["verdict"] == "better"
    assert gain["low"] == pytest.approx(0.05) and gain["high"] == pytest.approx(0.05)
    assert shuffle["low"] < 0 < shuffle["high"] and shuffle["verdict"] == NOISE
    low, high = comparison.intervals["rouge1"][0]
    assert low < sum(BASE) / len(BASE) < high


def test_cli_prints_intervals_noise_and_refuses_other_rows() -> None:
    base = recorded_run(BASE)
    shuffled = recorded_run(BASE[5:] + BASE[:5])
    other_rows = recorded_run(BASE[:6], ids=[f"other-{i}" for i in range(6)])
    result = CliRunner().invoke(app, ["compare", base, shuffled, other_rows])  # in-process: no interpreter start-up
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "not distinguishable from noise" in text and "95% bootstrap interval" in text
    assert "run 3: the runs were scored on different rows (10 and 6 rows, 0 in common)" in text


def test_different_rows_are_named_in_one_sentence() -> None:
    rows = [{"id": "a", "input": "x"}, {"id": "b", "input": "y"}]
    assert different_rows(rows, rows) is None
    assert "different rows (2 and 1 rows, 1 in common)" in different_rows(rows, rows[:1])
    assert "not their input" in different_rows(rows, [{"id": "a", "input": "x"}, {"id": "b", "input": "z"}])
