"""Live MLflow tracking on a tiny random model: a lifecycle with `tracking:` and a fine-tune recipe with one.

Read back with MlflowClient from a real MLflow SQLite store: the lifecycle is the parent run, its
steps nested, the fine-tune nested under its step *while it trains* (a probe callback looks at
MLflow mid-training), its curve complete and logged once; an export afterwards finds the same runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from transformers import TrainerCallback

from genlab.lineage import LineageStore
from genlab.pipeline import run_lifecycle
from genlab.pipeline.recipe import validate_lifecycle_recipe
from genlab.registry import get_method
from genlab.tracking.config import TrackingConfig
from genlab.tracking.mlflow_export import export_runs
from genlab.tuning.recipe import FinetuneRecipe
from tests.unit.mlflow_support import fresh_mlflow_uri

TRAINING = {"max_steps": 4, "batch_size": 4, "learning_rate": 1e-2, "eval_every": 2, "save_every": 4, "log_every": 1}


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from genlab.models.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-causal"))


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return fresh_mlflow_uri(tmp_path_factory, "mlflow-live")


class MlflowProbe(TrainerCallback):
    """At a given step, reads what MLflow already holds for the fine-tune being trained."""

    def __init__(self, uri: str, experiment: str, step: int) -> None:
        self.uri, self.experiment, self.step = uri, experiment, step
        self.seen: dict[str, Any] = {}

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step != self.step:
            return
        client = MlflowClient(tracking_uri=self.uri)
        experiment = client.get_experiment_by_name(self.experiment)
        (run,) = client.search_runs([experiment.experiment_id], "tags.`genlab.kind` = 'finetune'")
        parent = run.data.tags.get("mlflow.parentRunId")
        self.seen = {
            "status": run.info.status,
            "parent": client.get_run(parent).info.run_name if parent else None,
            "curve": [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")],
        }


def runs_by_name(client: MlflowClient, experiment: str) -> dict[str, Any]:
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id], max_results=1000)
    assert len({run.data.tags["genlab.run_id"] for run in runs}) == len(runs), "one MLflow run per lineage run"
    return {run.info.run_name: run for run in runs}


def test_a_lifecycle_with_tracking_is_a_parent_run_with_its_steps_nested_and_logs_training_live(
    tiny_folder: Path, mlflow_uri: str
) -> None:
    raw = {
        "name": "tiny-tracked",
        "scope": {"use_case": "a test", "metric": "rouge1", "target": 0.5},
        "data": {"path": "builtin", "held_out": 6, "limit": 30},
        "select": {"model": str(tiny_folder)},
        "adapt": {"lora": {"method": "lora", "lora": {"r": 4, "alpha": 8}, "data": {"validation_size": 4},
                           "training": TRAINING, "evaluation": {"enabled": False}}},
        "tracking": {"mlflow": mlflow_uri, "experiment": "lifecycles"},
    }  # fmt: skip
    probe = MlflowProbe(mlflow_uri, "lifecycles", step=3)
    result = run_lifecycle(validate_lifecycle_recipe(raw, None), trainer_callbacks=[probe], write_html=False)
    # mid-training: the fine-tune's run was already nested under its step, with the points logged so far
    assert probe.seen == {"status": "RUNNING", "parent": "adapt.lora", "curve": [1, 2]}

    client = MlflowClient(tracking_uri=mlflow_uri)
    runs = runs_by_name(client, "lifecycles")
    life = runs["lifecycle tiny-tracked"]
    assert life.data.tags["genlab.run_id"] == result.run_id and "mlflow.parentRunId" not in life.data.tags
    for step in ("scope", "select", "adapt.lora"):
        assert runs[step].data.tags["mlflow.parentRunId"] == life.info.run_id
    finetune = runs["finetune tiny-tracked-lora"]
    assert finetune.data.tags["mlflow.parentRunId"] == runs["adapt.lora"].info.run_id
    assert {run.info.status for run in runs.values()} == {"FINISHED"}  # synced when the pass ended
    curve = client.get_metric_history(finetune.info.run_id, "train_loss")
    assert sorted(m.step for m in curve) == [1, 2, 3, 4]  # each point once: live, and not again at the end

    with LineageStore() as store:
        adapter = store.artifacts_of(finetune.data.tags["genlab.run_id"], "output")
        assert finetune.data.tags["genlab.adapter.sha256"] == next(a.sha256 for a in adapter if a.kind == "adapter")
        assert finetune.data.tags["genlab.base_model"] == str(tiny_folder)
        again = export_runs(store, TrackingConfig(mlflow=mlflow_uri, experiment="lifecycles"), [result.run_id])
    assert again.created == 0 and sum(run.metric_points_logged for run in again.runs) == 0
    assert len(runs_by_name(client, "lifecycles")) == len(runs)


def test_a_finetune_recipe_with_tracking_logs_live_and_is_complete_when_the_method_returns(
    tiny_folder: Path, mlflow_uri: str
) -> None:
    recipe = FinetuneRecipe.model_validate({
        "name": "tiny-alone", "model": str(tiny_folder), "method": "lora", "lora": {"r": 4, "alpha": 8},
        "data": {"path": "builtin", "validation_size": 4, "limit": 24}, "training": {**TRAINING, "max_steps": 2},
        "evaluation": {"enabled": False}, "tracking": {"mlflow": mlflow_uri, "experiment": "finetunes"},
    })  # fmt: skip
    probe = MlflowProbe(mlflow_uri, "finetunes", step=2)
    with LineageStore() as store:
        result = get_method("lora").run(recipe, store=store, progress=False, callbacks=[probe])  # as genlab finetune runs it
        assert probe.seen == {"status": "RUNNING", "parent": None, "curve": [1]}  # logged while training
        client = MlflowClient(tracking_uri=mlflow_uri)
        (run,) = runs_by_name(client, "finetunes").values()
        assert run.data.tags["genlab.run_id"] == result.run_id and "mlflow.parentRunId" not in run.data.tags
        assert run.info.status == "FINISHED"  # synced when the method returned: status, outputs, final metrics
        assert run.data.tags["genlab.output.adapter.sha256"] == store.content_hash(Path(result.output_path))
        assert run.data.params["recipe.training.learning_rate"] == "0.01" and run.data.metrics["steps"] == 2
        assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]

        exported = export_runs(store, recipe.tracking, [result.run_id])
    assert [r.mlflow_run_id for r in exported.runs] == [run.info.run_id] and exported.created == 0
    assert exported.runs[0].metric_points_logged == 0
