"""Walk the lineage graph of a run: where its inputs came from and what used its outputs."""

from __future__ import annotations

from typing import Any

from genlab.lineage.store import LineageStore


def run_summary(store: LineageStore, run_id: str) -> dict[str, Any]:
    """A run with its metrics, inputs, outputs and lineage chain, ready to print or dump as JSON."""
    run = store.get_run(run_id)
    return {
        **run.to_dict(),
        "metrics": store.metrics(run.id),
        "inputs": [a.to_dict() for a in store.artifacts_of(run.id, "input")],
        "outputs": [a.to_dict() for a in store.artifacts_of(run.id, "output")],
        "lineage": {"upstream": upstream(store, run.id), "downstream": downstream(store, run.id)},
    }


def upstream(store: LineageStore, run_id: str, _seen: set[str] | None = None) -> list[dict[str, Any]]:
    """Each input artifact of the run, with the run that produced it and that run's own upstream."""
    seen = _seen if _seen is not None else {run_id}
    chain = []
    for artifact in store.artifacts_of(run_id, "input"):
        node: dict[str, Any] = {"artifact": artifact.id, "kind": artifact.kind, "path": artifact.path}
        producers = [p for p in store.producers_of(artifact.id) if p not in seen]
        seen.update(producers)
        node["produced_by"] = [
            {"run": p, "kind": store.get_run(p).kind, "upstream": upstream(store, p, seen)} for p in producers
        ]
        chain.append(node)
    return chain


def downstream(store: LineageStore, run_id: str, _seen: set[str] | None = None) -> list[dict[str, Any]]:
    """Each output artifact of the run, with the runs that used it and their own downstream."""
    seen = _seen if _seen is not None else {run_id}
    chain = []
    for artifact in store.artifacts_of(run_id, "output"):
        node: dict[str, Any] = {"artifact": artifact.id, "kind": artifact.kind, "path": artifact.path}
        consumers = [c for c in store.consumers_of(artifact.id) if c not in seen]
        seen.update(consumers)
        node["used_by"] = [
            {"run": c, "kind": store.get_run(c).kind, "downstream": downstream(store, c, seen)} for c in consumers
        ]
        chain.append(node)
    return chain
