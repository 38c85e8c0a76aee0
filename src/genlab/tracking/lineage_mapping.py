"""How a lineage run reads in MLflow: its name, status, params, lineage tags, nesting and export order.

Pure functions of the lineage store (no MLflow import), so the mapping is tested on its own:

- one MLflow run per lineage run, found again by its ``genlab.run_id`` tag (the stable id mapping);
- nesting by MLflow's own ``mlflow.parentRunId`` tag: a lifecycle run is the parent of its steps, a
  step the parent of the library runs inside it (finetune, ppo, eval), a fine-tune the parent of its
  evaluations. A run linked under several (a step reused by a later lifecycle pass) nests under the
  first, the pass that ran it; ``genlab.linked_above`` lists them all;
- params: the run's config flattened to dotted keys (``recipe.training.learning_rate``);
- tags for the lineage links: every input and output artifact's kind, content hash and path, the
  runs that produced the inputs, the base model and the adapter.

Written by hand: this is genlab's lineage schema, which no library knows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from genlab.lineage.records import ArtifactRecord, RunLink, RunRecord
from genlab.lineage.store import LineageStore, RunNotFoundError

GENLAB_RUN_ID = "genlab.run_id"  # the tag that maps a lineage run to its one MLflow run
PARENT_RUN_ID = "mlflow.parentRunId"  # MLflow's nesting tag (its UI draws the tree from it)
INTERRUPTED = "interrupted by the user"  # the lineage error of a Ctrl-C (genlab.lineage.run)
STATUS = {"running": "RUNNING", "completed": "FINISHED", "failed": "FAILED"}
# MLflow's limits (mlflow.utils.validation): longer values are refused, so they are clipped with a mark.
MAX_KEY, MAX_PARAM, MAX_TAG = 250, 6000, 8000
ALL_RUNS = 1_000_000_000  # "no limit" for LineageStore.list_runs


def mlflow_status(record: RunRecord) -> str:
    """RUNNING, FINISHED, FAILED, or KILLED for a run the user interrupted."""
    if record.status == "failed" and record.error == INTERRUPTED:
        return "KILLED"
    return STATUS[record.status]


def to_millis(iso_time: str) -> int:
    """A lineage time (ISO 8601 with its offset) as MLflow's milliseconds since the epoch."""
    return int(datetime.fromisoformat(iso_time).timestamp() * 1000)


def run_name(record: RunRecord) -> str:
    """``adapt.lora`` for a lifecycle step, ``finetune dialogsum-lora`` for a recipe's run, else the run id."""
    step = record.config.get("step")
    if isinstance(step, str) and step:
        return step
    recipe = record.config.get("recipe")
    if isinstance(recipe, Mapping) and isinstance(recipe.get("name"), str):
        return f"{record.kind} {recipe['name']}"
    return record.id


def mlflow_key(key: str) -> str:
    """A key MLflow accepts: letters, digits and ``_-. /:`` only, at most 250 characters."""
    return re.sub(r"[^0-9A-Za-z_\-. /:]", "_", key)[:MAX_KEY]


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def flatten_params(config: Mapping[str, Any]) -> dict[str, str]:
    """The config as MLflow params: nested keys joined by dots; strings as they are, the rest as JSON."""
    flat: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif prefix:
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
            flat[mlflow_key(prefix)] = clip(text, MAX_PARAM)

    walk("", config)
    return flat


def artifact_tags(direction: str, artifacts: list[ArtifactRecord]) -> dict[str, str]:
    """``genlab.input.dataset.sha256``/``.path`` for each artifact; a second of a kind is ``dataset.2``."""
    tags: dict[str, str] = {}
    seen: dict[str, int] = {}
    for artifact in artifacts:
        seen[artifact.kind] = seen.get(artifact.kind, 0) + 1
        number = seen[artifact.kind]
        base = mlflow_key(f"genlab.{direction}.{artifact.kind}" + (f".{number}" if number > 1 else ""))
        tags[f"{base}.sha256"] = artifact.sha256
        tags[f"{base}.path"] = clip(artifact.path, MAX_TAG)
    return tags


def base_model(record: RunRecord, inputs: list[ArtifactRecord], outputs: list[ArtifactRecord]) -> str | None:
    """The model a run started from: as its output names its base, its model input, or its recipe says."""
    named = [a.metadata.get("base") for a in outputs] + [a.metadata.get("model") for a in inputs if a.kind == "model"]
    recipe = record.config.get("recipe")
    named += [recipe.get("model") if isinstance(recipe, Mapping) else None, record.config.get("model")]
    return next((name for name in named if isinstance(name, str) and name), None)


def lineage_tags(store: LineageStore, record: RunRecord) -> dict[str, str]:
    """The run's identity and lineage links as MLflow tags (see the module docstring)."""
    tags = {
        GENLAB_RUN_ID: record.id, "genlab.kind": record.kind, "genlab.status": record.status,
        "genlab.version": record.genlab_version, "genlab.host": record.host,
    }  # fmt: skip
    if record.error:
        tags["genlab.error"] = clip(record.error, MAX_TAG)
    inputs, outputs = store.artifacts_of(record.id, "input"), store.artifacts_of(record.id, "output")
    tags |= artifact_tags("input", inputs) | artifact_tags("output", outputs)
    upstream = sorted({p for a in inputs for p in store.producers_of(a.id) if p != record.id})
    if upstream:
        tags["genlab.upstream_runs"] = clip(", ".join(upstream), MAX_TAG)
    model = base_model(record, inputs, outputs)
    if model:
        tags["genlab.base_model"] = clip(model, MAX_TAG)
    model_input = next((a for a in inputs if a.kind == "model"), None)
    if model_input is not None:
        tags["genlab.base_model.sha256"] = model_input.sha256
    adapter = next((a for a in outputs if a.kind == "adapter"), None) or next((a for a in inputs if a.kind == "adapter"), None)
    if adapter is not None:
        tags["genlab.adapter"] = clip(adapter.path, MAX_TAG)
        tags["genlab.adapter.sha256"] = adapter.sha256
    above = store.runs_linked_above(record.id)
    if above:
        tags["genlab.parent_run_id"], tags["genlab.relation"] = above[0].run_id, above[0].relation
    if len(above) > 1:
        tags["genlab.linked_above"] = clip(", ".join(link.run_id for link in above), MAX_TAG)
    return tags


def nesting_parent(store: LineageStore, run_id: str) -> RunLink | None:
    """The run ``run_id`` nests under in MLflow: the first it was linked below (the one that ran it)."""
    above = store.runs_linked_above(run_id)
    return above[0] if above else None


def export_order(store: LineageStore, run_ids: Iterable[str] | None = None) -> list[str]:
    """The runs to export, each after the run it nests under.

    ``None`` means every run in the store. Otherwise the given runs (a unique part of an id is
    enough), every run linked below them (a lifecycle's steps and their library runs), and the
    runs above them that they nest under, so the tree in MLflow has no missing parent.
    """
    if run_ids is None:
        selected = [record.id for record in reversed(store.list_runs(limit=ALL_RUNS))]
    else:
        selected = []
        for run_id in run_ids:
            _collect_below(store, store.get_run(run_id).id, selected)
    ordered: list[str] = []
    placed: set[str] = set()

    def place(run_id: str, visiting: frozenset[str]) -> None:
        if run_id in placed or run_id in visiting:  # a link cycle would be a bug elsewhere; never loop on it
            return
        parent = nesting_parent(store, run_id)
        if parent is not None and _exists(store, parent.run_id):
            place(parent.run_id, visiting | {run_id})
        placed.add(run_id)
        ordered.append(run_id)

    for run_id in selected:
        place(run_id, frozenset())
    return ordered


def _collect_below(store: LineageStore, run_id: str, into: list[str]) -> None:
    if run_id in into:
        return
    into.append(run_id)
    for link in store.runs_linked_under(run_id):
        _collect_below(store, link.run_id, into)


def _exists(store: LineageStore, run_id: str) -> bool:
    try:
        store.get_run(run_id)
    except RunNotFoundError:
        return False
    return True
