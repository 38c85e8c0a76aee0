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


def test_demo_runs_the_lifecycle_and_ends_with_the_table_and_the_report(tmp_path: Path) -> None:
    result = run_cli("demo", "--no-progress", *SMALL)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "held-out scores" in out and "rouge1 *" in out  # the comparison table, metric of record marked
    assert any("metric" in line and "base" in line and "lora" in line for line in out.splitlines())  # its header
    assert "int8-dynamic: original vs optimised" in out and "tokens/s (batch 1)" in out
    serve = next(line for line in out.splitlines() if line.startswith("serve: "))
    # The deployed model is merged and served by ONNX Runtime GenAI in int8 (the deploy stage's choice for a
    # model without adapters); genlab's own int8 artifact is what the optimise step measured above.
    assert serve.startswith("serve: genlab serve --model ") and "--backend onnxruntime-genai" in serve and "-int8" in serve
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

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exported = export_to_mlflow(uri, lifecycle["id"])
    assert all(run["created"] for run in exported) and exported[0]["genlab_run_id"] == lifecycle["id"]

    again = run_cli("demo", "--no-progress", *SMALL)  # nothing changed: every step is reused
    assert again.returncode == 0, again.stderr
    statuses = [line for line in again.stdout.splitlines() if "lifecycle." in line]
    assert len(statuses) == 7 and all("reused" in line for line in statuses)
    assert_demo_in_mlflow(uri, lifecycle["id"], len(exported))


def export_to_mlflow(uri: str, *run_ids: str) -> list[dict]:
    result = run_cli("runs", "export", *run_ids, "--mlflow", uri, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["runs"]


def assert_demo_in_mlflow(uri: str, lifecycle_id: str, first_count: int) -> None:
    """`genlab runs export` after `genlab demo`, read back by MLflow's client (issue 23's check)."""
    from mlflow import MlflowClient

    again = export_to_mlflow(uri)  # everything: the second pass's lifecycle run is new, the rest is found again
    assert sum(run["created"] for run in again) == len(again) - first_count
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("genlab").experiment_id], max_results=1000)
    by_id = {run.data.tags["genlab.run_id"]: run for run in runs}
    assert len(by_id) == len(runs) == len(again)  # one MLflow run per lineage run, after two exports
    life = by_id[lifecycle_id]
    steps = {run.info.run_name: run for run in runs if run.data.tags.get("mlflow.parentRunId") == life.info.run_id}
    assert set(steps) == {"scope", "select", "prompt", "adapt.lora", "evaluate", "optimise", "deploy"}
    (finetune,) = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == steps["adapt.lora"].info.run_id
                   and run.data.tags["genlab.kind"] == "finetune"]  # fmt: skip
    from genlab.lineage import LineageStore

    with LineageStore() as store:  # the curve as the lineage store holds it, point for point
        curve = store.metric_history(finetune.data.tags["genlab.run_id"], "train_loss")
    assert curve and sorted((m.step, m.value) for m in client.get_metric_history(finetune.info.run_id, "train_loss")) == sorted(curve)
    assert finetune.data.tags["genlab.base_model"] == "smollm2-135m-instruct"
    assert len(finetune.data.tags["genlab.adapter.sha256"]) == 64 and finetune.data.params["recipe.method"] == "lora"
    assert finetune.data.tags["genlab.input.dataset.sha256"] == steps["adapt.lora"].data.tags["genlab.input.dataset.sha256"]
