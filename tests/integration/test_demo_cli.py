"""The main job as a new user runs it: `genlab demo` on the default model, shrunk by overrides to stay short.

The demo recipe itself (two LoRA epochs, 16 held-out dialogues) is timed by hand on an idle machine;
here every stage runs on a few rows and steps, which is enough to see the whole chain work.
"""

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.integration

SMALL = (
    "data.held_out=4", "prompt.shots=[0]", "prompt.max_new_tokens=8", "adapt.lora.training.max_steps=2",
    "adapt.lora.data.validation_size=2", "evaluate.max_new_tokens=8", "optimise.eval_limit=2",
    "optimise.speed_prompts=1", "optimise.speed_tokens=4", "optimise.max_new_tokens=8",
)  # fmt: skip


def test_demo_runs_the_lifecycle_and_ends_with_the_table_and_the_report() -> None:
    result = run_cli("demo", "--no-progress", *SMALL)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "held-out scores" in out and "rouge1 *" in out  # the comparison table, metric of record marked
    assert any("metric" in line and "base" in line and "lora" in line for line in out.splitlines())  # its header
    assert "int8-dynamic: original vs optimised" in out and "tokens/s (batch 1)" in out
    serve = next(line for line in out.splitlines() if line.startswith("serve: "))
    assert serve.startswith("serve: genlab serve --model ") and "int8-dynamic" in serve
    report = Path(next(line for line in out.splitlines() if line.startswith("report: ")).removeprefix("report: "))
    html = report.read_text(encoding="utf-8")
    assert "Lifecycle: lifecycle-demo" in html and "smollm2-135m-instruct" in html

    (lifecycle,) = json.loads(run_cli("runs", "list", "--json", "--kind", "lifecycle").stdout)
    assert lifecycle["status"] == "completed" and lifecycle["config"]["source"] == "lifecycle-demo"
    assert lifecycle["config"]["steps"] == ["scope", "select", "prompt", "adapt.lora", "evaluate", "optimise", "deploy"]
    kinds = {run["kind"] for run in json.loads(run_cli("runs", "list", "--json", "--limit", "100").stdout)}
    assert {"lifecycle.adapt", "finetune", "eval", "optimize", "prompt-compare"} <= kinds
    best = out.split("best: ", 1)[1].split(";")[0].split(")")[0]
    assert best in ("base", "lora") and (("merge" in kinds) == (best == "lora"))  # an adapter is merged before int8

    again = run_cli("demo", "--no-progress", *SMALL)  # nothing changed: every step is reused
    assert again.returncode == 0, again.stderr
    statuses = [line for line in again.stdout.splitlines() if "lifecycle." in line]
    assert len(statuses) == 7 and all("reused" in line for line in statuses)
