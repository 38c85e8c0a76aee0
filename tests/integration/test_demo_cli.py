"""The main job end to end, as a new user runs it: `genlab demo`, then the lineage it left."""

import json

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.integration


def test_demo_prints_a_summary_and_records_its_run() -> None:
    result = run_cli("demo")
    assert result.returncode == 0, result.stderr
    assert "model card of smollm2-135m-instruct" in result.stdout
    assert "total memory" in result.stdout and "generated summary:" in result.stdout
    summary_line = next(line for line in result.stdout.splitlines() if line.startswith("generated summary:"))
    assert len(summary_line.removeprefix("generated summary:").split()) >= 3

    runs = json.loads(run_cli("runs", "list", "--json").stdout)
    demo = next(run for run in runs if run["kind"] == "demo")
    assert demo["status"] == "completed" and demo["error"] is None
    assert demo["config"]["model"] == "smollm2-135m-instruct"
    (summary,) = demo["artifacts"]
    assert summary["kind"] == "summary" and len(summary["sha256"]) == 64
    written = json.loads(open(summary["path"]).read())
    assert written["summary"] and written["reference"]
    assert 0.0 <= demo["metrics"]["rouge1"] <= 1.0
    assert demo["metrics"]["rouge1"] == pytest.approx(written["rouge"]["rouge1"])
    assert {a["kind"] for a in demo["inputs"]} == {"dataset", "model"}

    shown = json.loads(run_cli("runs", "show", demo["id"], "--json").stdout)
    assert shown["id"] == demo["id"] and shown["outputs"][0]["id"] == summary["id"]


def test_pull_of_the_default_pack_records_the_model() -> None:
    result = run_cli("models", "pull", "smollm2-135m-instruct")
    assert result.returncode == 0, result.stderr
    assert "134,515,008 parameters" in result.stdout
    (pull,) = json.loads(run_cli("runs", "list", "--json", "--kind", "pull").stdout)
    assert pull["status"] == "completed" and pull["artifacts"][0]["kind"] == "model"
    assert pull["metrics"]["params"] == 134_515_008
