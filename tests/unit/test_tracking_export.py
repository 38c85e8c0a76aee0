"""genlab runs export: lineage runs into a real MLflow store (SQLite), read back with MlflowClient.

The lineage here is written by hand with the lineage API (a lifecycle pass, its adapt step, the
fine-tune inside it and that fine-tune's evaluation, plus an unrelated run), so the mapping is
checked against values this file chose; tests/unit/test_tracking_live.py runs a real (tiny) lifecycle.
One MLflow database serves the module (a copy of the session's migrated one: tests/unit/mlflow_support.py);
each test exports into an experiment of its own.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow import MlflowClient

from genlab.cli import main
from genlab.lineage import LineageStore, record_run
from genlab.tracking.config import TrackingConfig
from genlab.tracking.lineage_mapping import flatten_params
from genlab.tracking.live import LiveTracking
from genlab.tracking.mlflow_export import export_runs
from genlab.tracking.mlflow_target import MlflowTarget, open_mlflow, sqlite_database
from tests.unit.mlflow_support import fresh_mlflow_uri


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return fresh_mlflow_uri(tmp_path_factory, "mlflow-export")


@pytest.fixture(scope="module")
def client(mlflow_uri: str) -> MlflowClient:
    return open_mlflow(TrackingConfig(mlflow=mlflow_uri, experiment="first-open")).client


def new_experiment(client: MlflowClient, uri: str, name: str) -> MlflowTarget:
    """An experiment whose artifacts go beside the database, as open_mlflow makes them (not ./mlruns)."""
    artifacts = (sqlite_database(uri).parent / f"mlartifacts-{name}").as_uri()
    return MlflowTarget(client, client.create_experiment(name, artifact_location=artifacts), uri)


@pytest.fixture
def target(client: MlflowClient, mlflow_uri: str, request: pytest.FixtureRequest) -> MlflowTarget:
    """An experiment of this test's own in the module's MLflow store."""
    return new_experiment(client, mlflow_uri, request.node.name)


@dataclass
class Lineage:
    lifecycle: str
    step: str
    finetune: str
    evaluation: str
    other: str
    data_sha: str
    model_sha: str
    adapter_sha: str
    adapter: Path


def write_lineage(store: LineageStore, folder: Path) -> Lineage:
    data = folder / "train.jsonl"
    data.write_text('{"dialogue": "A: hi", "summary": "greeting"}\n')
    model = folder / "base"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    adapter = folder / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    recipe = {"name": "tiny-lora", "model": "tiny-base", "training": {"learning_rate": 0.01, "max_steps": 4}}
    with (
        record_run("lifecycle", {"recipe": {"name": "tiny-life", "data": {"held_out": 6}}}, store=store) as life,
        record_run("lifecycle.adapt", {"lifecycle": life.id, "step": "adapt.lora"}, store=store) as step,
    ):
        life.add_child(step)
        step.use(data, "dataset", {"label": "train split"})
        with record_run("finetune", {"recipe": recipe}, store=store) as finetune:
            finetune.use(model, "model", {"model": "tiny-base"})
            finetune.use(data, "dataset", {"role": "train"})
            for number, loss in enumerate([2.0, 1.5, 1.25, 1.0], start=1):
                finetune.log_metric("train_loss", loss, step=number)
            finetune.log_metric("eval_loss", 1.4, step=2)
            finetune.log_metric("trainable_params", 1234.0)
            finetune.log_artifact(adapter, "adapter", {"method": "lora", "base": "tiny-base"})
            with record_run("eval", {"metrics": ["rouge"]}, store=store) as evaluation:
                evaluation.use(adapter, "adapter")
                evaluation.log_metric("rouge1", 0.31)
            store.link(("run", finetune.id), ("run", evaluation.id), "tuned")
        store.link(("run", step.id), ("run", finetune.id), "child")
        step.log_artifact(adapter, "adapter", {"label": "adapter lora"})
    with record_run("generate", {"prompt": "hi"}, store=store) as other:
        pass
    return Lineage(
        life.id, step.id, finetune.id, evaluation.id, other.id,
        store.content_hash(data), store.content_hash(model), store.content_hash(adapter), adapter,
    )  # fmt: skip


@pytest.fixture
def lineage(tmp_path: Path) -> tuple[LineageStore, Lineage]:
    store = LineageStore()
    yield store, write_lineage(store, tmp_path)
    store.close()


def by_genlab_id(client: MlflowClient, experiment_id: str) -> dict[str, object]:
    runs = client.search_runs([experiment_id], max_results=1000)
    ids = [run.data.tags["genlab.run_id"] for run in runs]
    assert len(ids) == len(set(ids)), "one MLflow run per lineage run"
    return dict(zip(ids, runs, strict=True))


def test_a_lifecycle_is_the_parent_of_its_steps_with_params_curves_and_lineage_tags(lineage, target) -> None:
    store, ids = lineage
    export_runs(store, TrackingConfig(mlflow=target.uri), target=target)
    client = target.client
    runs = by_genlab_id(client, target.experiment_id)
    assert set(runs) == {ids.lifecycle, ids.step, ids.finetune, ids.evaluation, ids.other}

    life, step, finetune, evaluation = (runs[i] for i in (ids.lifecycle, ids.step, ids.finetune, ids.evaluation))
    assert "mlflow.parentRunId" not in life.data.tags and "mlflow.parentRunId" not in runs[ids.other].data.tags
    assert step.data.tags["mlflow.parentRunId"] == life.info.run_id
    assert finetune.data.tags["mlflow.parentRunId"] == step.info.run_id
    assert evaluation.data.tags["mlflow.parentRunId"] == finetune.info.run_id
    assert evaluation.data.tags["genlab.relation"] == "tuned"
    assert (life.info.run_name, step.info.run_name, finetune.info.run_name) == ("lifecycle tiny-life", "adapt.lora", "finetune tiny-lora")
    assert {run.info.status for run in runs.values()} == {"FINISHED"}

    assert finetune.data.params["recipe.training.learning_rate"] == "0.01"
    assert finetune.data.params["recipe.name"] == "tiny-lora"
    assert life.data.params["recipe.data.held_out"] == "6"
    curve = client.get_metric_history(finetune.info.run_id, "train_loss")
    assert [(m.step, m.value) for m in curve] == [(1, 2.0), (2, 1.5), (3, 1.25), (4, 1.0)]
    assert finetune.data.metrics["eval_loss"] == 1.4 and evaluation.data.metrics["rouge1"] == 0.31

    tags = finetune.data.tags
    assert tags["genlab.input.dataset.sha256"] == ids.data_sha
    assert tags["genlab.input.model.sha256"] == tags["genlab.base_model.sha256"] == ids.model_sha
    assert tags["genlab.base_model"] == "tiny-base"
    assert tags["genlab.output.adapter.sha256"] == tags["genlab.adapter.sha256"] == ids.adapter_sha
    assert tags["genlab.adapter"] == str(ids.adapter.resolve())
    assert evaluation.data.tags["genlab.adapter.sha256"] == ids.adapter_sha  # the adapter it read
    assert evaluation.data.tags["genlab.upstream_runs"] == ", ".join(sorted([ids.finetune, ids.step]))  # who wrote it
    (dataset,) = client.get_run(finetune.info.run_id).inputs.dataset_inputs
    assert dataset.dataset.name == "train.jsonl" and ids.data_sha.startswith(dataset.dataset.digest)
    assert [(t.key, t.value) for t in dataset.tags] == [("mlflow.data.context", "train split")]  # the artifact's first label


def test_export_again_updates_the_same_runs_and_never_duplicates(lineage, target) -> None:
    store, ids = lineage
    config = TrackingConfig(mlflow=target.uri)
    running = store.start_run("finetune", {"recipe": {"name": "still-going"}})
    store.log_metric(running, "train_loss", 3.0, step=1)
    store.log_metric(running, "train_loss", 2.5, step=2)
    first = export_runs(store, config, target=target)
    assert first.created == 6
    mapping = {run.genlab_run_id: run.mlflow_run_id for run in first.runs}
    assert target.client.get_run(mapping[running]).info.status == "RUNNING"

    store.log_metric(running, "train_loss", 2.0, step=3)  # the run goes on, then fails
    store.finish_run(running, error="RuntimeError: out of memory")
    second = export_runs(store, config, target=target)
    assert second.created == 0 and {run.genlab_run_id: run.mlflow_run_id for run in second.runs} == mapping
    assert {run.genlab_run_id: run.metric_points_logged for run in second.runs if run.metric_points_logged} == {running: 1}
    again = target.client.get_run(mapping[running])
    assert again.info.status == "FAILED" and again.data.tags["genlab.error"] == "RuntimeError: out of memory"
    curve = target.client.get_metric_history(mapping[running], "train_loss")
    assert sorted((m.step, m.value) for m in curve) == [(1, 3.0), (2, 2.5), (3, 2.0)]

    third = export_runs(store, config, target=target)
    assert third.created == 0 and sum(run.metric_points_logged for run in third.runs) == 0
    assert len(by_genlab_id(target.client, target.experiment_id)) == 6
    assert len(target.client.get_run(mapping[ids.finetune]).inputs.dataset_inputs) == 1  # not logged twice


def test_named_runs_bring_the_runs_below_them_and_the_parents_they_nest_under(lineage, target) -> None:
    store, ids = lineage
    result = export_runs(store, TrackingConfig(mlflow=target.uri), [ids.finetune[-6:]], target=target)  # a unique part
    assert [run.genlab_run_id for run in result.runs] == [ids.lifecycle, ids.step, ids.finetune, ids.evaluation]
    runs = by_genlab_id(target.client, target.experiment_id)
    assert runs[ids.finetune].data.tags["mlflow.parentRunId"] == runs[ids.step].info.run_id


def test_copy_artifacts_uploads_each_output_once_and_only_as_recorded(lineage, target) -> None:
    store, ids = lineage
    config = TrackingConfig(mlflow=target.uri)
    first = export_runs(store, config, [ids.finetune], copy_artifacts=True, target=target)
    copied = {run.genlab_run_id: run.artifacts_copied for run in first.runs}
    assert copied[ids.finetune] == 1 and copied[ids.step] == 1 and first.warnings == []
    mlflow_id = next(run.mlflow_run_id for run in first.runs if run.genlab_run_id == ids.finetune)
    files = target.client.list_artifacts(mlflow_id, "outputs/adapter/adapter")
    assert target.client.get_run(mlflow_id).info.artifact_uri.startswith(Path(target.uri.removeprefix("sqlite:///")).parent.as_uri())
    assert [(f.path, f.file_size) for f in files] == [("outputs/adapter/adapter/adapter_model.safetensors", 7)]

    assert sum(run.artifacts_copied for run in export_runs(store, config, copy_artifacts=True, target=target).runs) == 0
    (ids.adapter / "adapter_model.safetensors").write_bytes(b"other weights")  # overwritten by something else
    fresh = new_experiment(target.client, target.uri, "copy-after-change")
    refused = export_runs(store, config, [ids.finetune], copy_artifacts=True, target=fresh)
    assert sum(run.artifacts_copied for run in refused.runs) == 0
    assert any("changed since the run wrote it" in warning for warning in refused.warnings)


def run_genlab(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The genlab command in this process (its start-up is the slow part of a subprocess)."""
    monkeypatch.setattr(sys, "argv", ["genlab", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    captured = capsys.readouterr()
    return int(exit_.value.code or 0), captured.out, captured.err


def test_cli_exports_and_says_one_sentence_for_bad_input(lineage, mlflow_uri, monkeypatch, capsys) -> None:
    import json

    ids = lineage[1]
    code, out, err = run_genlab(monkeypatch, capsys, "runs", "export", ids.lifecycle, "--mlflow", mlflow_uri, "--experiment", "cli", "--json")
    assert code == 0, err
    exported = json.loads(out)
    assert [run["genlab_run_id"] for run in exported["runs"]] == [ids.lifecycle, ids.step, ids.finetune, ids.evaluation]
    assert all(run["created"] for run in exported["runs"])

    code, out, err = run_genlab(monkeypatch, capsys, "runs", "export", "--mlflow", mlflow_uri, "--experiment", "cli")
    assert code == 0 and "5 runs: 1 created, 4 updated" in out  # the unrelated run is new; the rest are found again

    for args, sentence in [
        (["--mlflow", "mlruns"], "MLflow no longer tracks into plain folders"),
        (["--mlflow", "sqlite://mlflow.db"], "three slashes"),
        (["--mlflow", "ftp://host/x"], "scheme 'ftp' is not an MLflow tracking store"),
        ([], "--mlflow URI is required"),
        (["no-such-run", "--mlflow", mlflow_uri], "no run with id 'no-such-run'"),
    ]:
        code, out, err = run_genlab(monkeypatch, capsys, "runs", "export", *args)
        assert code == 2 and err.startswith("error: ") and sentence in err and err.count("\n") == 1, err
        assert "Traceback" not in err


def test_a_missing_extra_is_one_sentence_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from genlab.tracking import mlflow_target
    from genlab.tracking.mlflow_target import TrackingUnavailableError

    real = mlflow_target.importlib.util.find_spec
    monkeypatch.setattr(mlflow_target.importlib.util, "find_spec", lambda name: None if name == "alembic" else real(name))
    with pytest.raises(TrackingUnavailableError, match=r"needs alembic: pip install 'genlab\[mlflow\]'"):
        open_mlflow(TrackingConfig(mlflow="sqlite:///never-made.db"))
    assert not Path("never-made.db").exists()


def test_a_store_failing_mid_run_is_said_once_and_the_work_goes_on(lineage, mlflow_uri, monkeypatch, capsys) -> None:
    store, ids = lineage
    session = LiveTracking(TrackingConfig(mlflow=mlflow_uri, experiment="failing"), store)
    mlflow_id = session.start(ids.finetune)
    assert mlflow_id is not None

    def refuse(*args: object, **kwargs: object) -> None:
        raise ConnectionError("tracking server went away")

    monkeypatch.setattr(session.mirror.client, "log_batch", refuse)
    session.log(mlflow_id, {"train_loss": 1.0}, step=5)  # no exception reaches the training
    session.log(mlflow_id, {"train_loss": 0.9}, step=6)
    session.close()
    err = capsys.readouterr().err
    assert err.count("warning: MLflow tracking stopped (ConnectionError: tracking server went away)") == 1
    assert "genlab runs export --mlflow" in err


def test_params_are_the_flattened_config_clipped_to_mlflow_limits() -> None:
    params = flatten_params({"recipe": {"lora": {"r": 8, "target_modules": ["q_proj", "v_proj"]}, "name": "x",
                                        "data": {"limit": None, "chat": True}, "empty": {}}, "long": "y" * 7000})  # fmt: skip
    assert params["recipe.lora.r"] == "8" and params["recipe.lora.target_modules"] == '["q_proj", "v_proj"]'
    assert params["recipe.name"] == "x" and params["recipe.data.limit"] == "null" and params["recipe.data.chat"] == "true"
    assert params["recipe.empty"] == "{}" and len(params["long"]) == 6000 and params["long"].endswith("…")
