"""Lineage runs -> MLflow runs: ``genlab runs export --mlflow URI [RUN_ID ...] [--copy-artifacts]``.

The lineage store stays the source of truth; MLflow gets a mirror of it (the mapping is in
:mod:`genlab.tracking.lineage_mapping`): one MLflow run per lineage run, nested as the lineage links
them (a lifecycle run is the parent of its steps), its config as params, every metric point with
its step and time (loss curves), its lineage links as tags, and its datasets as MLflow dataset
inputs (by reference: name, content digest and path).

Re-export updates and never duplicates. Each MLflow run carries the tag ``genlab.run_id`` and is
found again by it (``MlflowClient.search_runs``); tags are overwritten with the current values,
params already there are kept (MLflow refuses to change one; a lineage config never changes),
metric points already there (same key, step and value -- from an earlier export or from live
logging while training) are not logged again, and MLflow's store does not duplicate a dataset input.

Artifacts: by reference (tags with kind, sha256 and path) unless ``copy_artifacts``, which also
uploads each run's outputs into its MLflow artifacts (``outputs/<kind>/``), once per content hash,
and only when the file on disk still has the content the lineage recorded.

Written by hand over MlflowClient: MLflow has no importer for another tool's lineage.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genlab.lineage.records import RunRecord
from genlab.lineage.store import LineageStore
from genlab.tracking.config import TrackingConfig
from genlab.tracking.lineage_mapping import (
    GENLAB_RUN_ID,
    PARENT_RUN_ID,
    export_order,
    flatten_params,
    lineage_tags,
    mlflow_key,
    mlflow_status,
    nesting_parent,
    run_name,
    to_millis,
)  # fmt: skip
from genlab.tracking.mlflow_target import MlflowTarget, open_mlflow

BATCH_PARAMS_OR_TAGS, BATCH_METRICS = 100, 1000  # MLflow's log_batch limits
COPIED = "genlab.copied."  # + artifact id: the sha256 of the content uploaded for it


@dataclass
class ExportedRun:
    genlab_run_id: str
    mlflow_run_id: str
    name: str
    created: bool  # False: an MLflow run for it was there already and was updated
    parent_mlflow_run_id: str | None = None
    metric_points_logged: int = 0
    artifacts_copied: int = 0


@dataclass
class ExportResult:
    uri: str
    experiment_id: str
    runs: list[ExportedRun] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # artifacts not copied, and why

    @property
    def created(self) -> int:
        return sum(run.created for run in self.runs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MlflowMirror:
    """Creates or updates the MLflow run of a lineage run; remembers the id mapping it has seen."""

    def __init__(self, target: MlflowTarget, store: LineageStore) -> None:
        self.target, self.client, self.store = target, target.client, store
        self.ids: dict[str, str] = {}  # lineage run id -> MLflow run id
        self.warnings: list[str] = []

    def index(self) -> None:
        """Load the whole mapping in a few queries (before exporting many runs)."""
        token = None
        while True:
            page = self.client.search_runs(
                [self.target.experiment_id], filter_string=f"tags.`{GENLAB_RUN_ID}` LIKE '%'",
                max_results=1000, page_token=token,
            )  # fmt: skip
            for run in page:
                self.ids.setdefault(run.data.tags[GENLAB_RUN_ID], run.info.run_id)
            token = page.token
            if not token:
                return

    def find(self, genlab_run_id: str) -> str | None:
        """The MLflow run of a lineage run, if there is one (deleted MLflow runs do not count)."""
        if genlab_run_id not in self.ids:
            found = self.client.search_runs(
                [self.target.experiment_id], filter_string=f"tags.`{GENLAB_RUN_ID}` = '{genlab_run_id}'",
                max_results=1, order_by=["attributes.start_time ASC"],
            )  # fmt: skip
            if found:
                self.ids[genlab_run_id] = found[0].info.run_id
        return self.ids.get(genlab_run_id)

    def upsert(self, genlab_run_id: str, *, parent: str | None = None, copy_artifacts: bool = False) -> ExportedRun:
        """Create or update the MLflow run of ``genlab_run_id``.

        ``parent`` is the lineage run it nests under while no lineage link says so yet (live logging
        inside a lifecycle step, before the step links the library run it started).
        """
        record = self.store.get_run(genlab_run_id)
        tags = lineage_tags(self.store, record)
        link = nesting_parent(self.store, record.id)
        parent = link.run_id if link is not None else (parent if parent != record.id else None)
        parent_mlflow = self.find(parent) if parent else None
        if parent_mlflow is not None:
            tags[PARENT_RUN_ID] = parent_mlflow
            tags.setdefault("genlab.parent_run_id", parent)
        mlflow_id = self.find(record.id)
        created = mlflow_id is None
        if mlflow_id is None:
            mlflow_id = self.client.create_run(
                self.target.experiment_id, start_time=to_millis(record.started_at), tags=tags, run_name=run_name(record)
            ).info.run_id
            self.ids[record.id] = mlflow_id
            existing_params: dict[str, str] = {}
            existing_tags: dict[str, str] = dict(tags)
        else:
            data = self.client.get_run(mlflow_id).data
            existing_params, existing_tags = dict(data.params), dict(data.tags)
        exported = ExportedRun(record.id, mlflow_id, run_name(record), created, parent_mlflow)
        params = {k: v for k, v in flatten_params(record.config).items() if k not in existing_params}
        changed_tags = {} if created else {k: v for k, v in tags.items() if existing_tags.get(k) != v}
        metrics = self._new_metric_points(record, mlflow_id, created)
        self._log_batches(mlflow_id, params, changed_tags, metrics)
        exported.metric_points_logged = len(metrics)
        self._log_dataset_inputs(record, mlflow_id)
        if copy_artifacts:
            exported.artifacts_copied = self._copy_outputs(record, mlflow_id, existing_tags)
        if record.status != "running":
            self.client.set_terminated(mlflow_id, mlflow_status(record), end_time=to_millis(record.ended_at or record.started_at))
        return exported

    def log_live_metrics(self, mlflow_run_id: str, values: dict[str, float], step: int) -> None:
        """Training metrics as the Trainer logs them (already under the lineage's names)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(mlflow_key(name), float(value), now, step) for name, value in values.items()]
        self.client.log_batch(mlflow_run_id, metrics=metrics)

    def _new_metric_points(self, record: RunRecord, mlflow_id: str, created: bool) -> list[Any]:
        from mlflow.entities import Metric

        points = self.store.metric_points(record.id)
        logged: dict[str, list[tuple[int, float]]] = {}
        if not created:  # what an earlier export or live logging put there: same key, step and value
            for name in {mlflow_key(point.name) for point in points}:
                logged[name] = [(m.step, m.value) for m in self.client.get_metric_history(mlflow_id, name)]
        new = []
        for point in points:
            key, step = mlflow_key(point.name), point.step or 0
            if any(s == step and _same(v, point.value) for s, v in logged.get(key, ())):
                continue
            new.append(Metric(key, point.value, to_millis(point.recorded_at), step))
        return new

    def _log_batches(self, mlflow_id: str, params: dict[str, str], tags: dict[str, str], metrics: list[Any]) -> None:
        from mlflow.entities import Param, RunTag

        param_list = [Param(k, v) for k, v in params.items()]
        tag_list = [RunTag(k, v) for k, v in tags.items()]
        for start in range(0, len(param_list), BATCH_PARAMS_OR_TAGS):
            self.client.log_batch(mlflow_id, params=param_list[start : start + BATCH_PARAMS_OR_TAGS])
        for start in range(0, len(tag_list), BATCH_PARAMS_OR_TAGS):
            self.client.log_batch(mlflow_id, tags=tag_list[start : start + BATCH_PARAMS_OR_TAGS])
        for start in range(0, len(metrics), BATCH_METRICS):
            self.client.log_batch(mlflow_id, metrics=metrics[start : start + BATCH_METRICS])

    def _log_dataset_inputs(self, record: RunRecord, mlflow_id: str) -> None:
        """The datasets the run read, as MLflow dataset inputs (by reference: name, digest, source path)."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        inputs = []
        for artifact in self.store.artifacts_of(record.id, "input"):
            if artifact.kind != "dataset":
                continue
            role = str(artifact.metadata.get("role") or artifact.metadata.get("label") or "input")
            source = json.dumps({"uri": Path(artifact.path).as_uri()})
            dataset = Dataset(Path(artifact.path).name, artifact.sha256[:32], "local", source)
            inputs.append(DatasetInput(dataset, [InputTag("mlflow.data.context", role[:500])]))
        if inputs:
            self.client.log_inputs(mlflow_id, datasets=inputs)

    def _copy_outputs(self, record: RunRecord, mlflow_id: str, existing_tags: dict[str, str]) -> int:
        copied = 0
        for artifact in self.store.artifacts_of(record.id, "output"):
            marker = mlflow_key(COPIED + artifact.id)
            if existing_tags.get(marker) == artifact.sha256:
                continue  # uploaded by an earlier export
            path = Path(artifact.path)
            if not path.exists():
                self.warnings.append(f"{record.id}: {path} is gone, so it was not copied")
                continue
            if self.store.content_hash(path) != artifact.sha256:
                self.warnings.append(f"{record.id}: {path} changed since the run wrote it, so it was not copied")
                continue
            destination = f"outputs/{mlflow_key(artifact.kind)}"
            if path.is_dir():
                self.client.log_artifacts(mlflow_id, str(path), f"{destination}/{path.name}")
            else:
                self.client.log_artifact(mlflow_id, str(path), destination)
            self.client.set_tag(mlflow_id, marker, artifact.sha256)
            copied += 1
        return copied


def export_runs(
    store: LineageStore,
    config: TrackingConfig,
    run_ids: Iterable[str] | None = None,
    *,
    copy_artifacts: bool = False,
    target: MlflowTarget | None = None,
) -> ExportResult:
    """Export ``run_ids`` (all runs when None) with what is linked below and above them; see the module docstring."""
    order = export_order(store, list(run_ids) if run_ids is not None else None)  # unknown ids fail before MLflow opens
    target = target or open_mlflow(config)
    mirror = MlflowMirror(target, store)
    mirror.index()
    result = ExportResult(target.uri, target.experiment_id)
    for run_id in order:
        result.runs.append(mirror.upsert(run_id, copy_artifacts=copy_artifacts))
    result.warnings = mirror.warnings
    return result


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
