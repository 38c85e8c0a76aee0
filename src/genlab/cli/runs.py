"""`genlab runs list|show|export`: the lineage store, and its runs exported to MLflow."""

from __future__ import annotations

from typing import Annotated

import typer

from genlab.cli.output import console, err_console, print_json, print_pairs, print_table

app = typer.Typer(help="Runs recorded in the lineage store.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command("list")
def list_command(
    as_json: JsonFlag = False,
    kind: Annotated[str | None, typer.Option(help="Only runs of this kind (demo, pull, ...).")] = None,
    status: Annotated[str | None, typer.Option(help="running, completed or failed.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs, newest first.")] = 50,
) -> None:
    """List runs, newest first, with their artifacts."""
    from genlab.lineage import LineageStore

    with LineageStore() as store:
        runs = store.list_runs(kind=kind, status=status, limit=limit)
        if as_json:
            print_json(
                [
                    {
                        **run.to_dict(),
                        "metrics": store.metrics(run.id),
                        "artifacts": [a.to_dict() for a in store.artifacts_of(run.id, "output")],
                        "inputs": [a.to_dict() for a in store.artifacts_of(run.id, "input")],
                    }
                    for run in runs
                ]
            )
            return
        print_table(
            "runs",
            ["id", "kind", "status", "started", "outputs", "error"],
            [
                (r.id, r.kind, r.status, r.started_at[:16].replace("T", " "), len(store.artifacts_of(r.id, "output")), r.error or "")
                for r in runs
            ],
        )


@app.command("show")
def show_command(run_id: str, as_json: JsonFlag = False) -> None:
    """Show a run with its metrics, inputs, outputs and lineage chain."""
    from genlab.lineage import LineageStore, run_summary

    with LineageStore() as store:
        summary = run_summary(store, run_id)
    if as_json:
        print_json(summary)
        return
    print_pairs(
        f"run {summary['id']}",
        [
            ("kind", summary["kind"]),
            ("status", summary["status"]),
            ("started", summary["started_at"]),
            ("ended", summary["ended_at"]),
            ("genlab", summary["genlab_version"]),
            ("error", summary["error"]),
            ("config", summary["config"]),
        ],
    )
    if summary["metrics"]:
        print_table("metrics", ["name", "value"], [(k, f"{int(v):,}" if float(v).is_integer() else f"{v:.4g}") for k, v in summary["metrics"].items()])
    for label in ("inputs", "outputs"):
        if summary[label]:
            print_table(label, ["id", "kind", "sha256", "path"], [(a["id"], a["kind"], a["sha256"][:12], a["path"]) for a in summary[label]])
    _print_chain(summary["lineage"]["upstream"], "produced_by", "upstream", "upstream (where the inputs came from)")


@app.command("export")
def export_command(
    run_ids: Annotated[
        list[str] | None,
        typer.Argument(help="Runs to export (a unique part of an id will do), with the runs linked below them; all runs when none."),
    ] = None,
    mlflow: Annotated[str, typer.Option("--mlflow", help="MLflow tracking URI, e.g. sqlite:///mlflow.db or http://localhost:5000.")] = "",
    experiment: Annotated[str, typer.Option(help="The MLflow experiment the runs go into (made if missing).")] = "genlab",
    copy_artifacts: Annotated[
        bool, typer.Option("--copy-artifacts", help="Upload each run's outputs into MLflow too (default: tags name their path and hash).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Export runs to MLflow: a lifecycle with its steps nested, params, loss curves, lineage tags.

    Exporting again updates the same MLflow runs (found by their genlab.run_id tag) and never duplicates.
    """
    from pydantic import ValidationError

    from genlab.errors import GenlabError, invalid_value
    from genlab.lineage import LineageStore
    from genlab.tracking.config import TrackingConfig
    from genlab.tracking.mlflow_export import export_runs

    if not mlflow:
        raise GenlabError("runs export: --mlflow URI is required, e.g. --mlflow sqlite:///mlflow.db.")
    try:
        config = TrackingConfig(mlflow=mlflow, experiment=experiment)
    except ValidationError as error:
        raise invalid_value(error, prefix="runs export") from None
    with LineageStore() as store:
        result = export_runs(store, config, run_ids or None, copy_artifacts=copy_artifacts)
    for warning in result.warnings:
        err_console.print(f"warning: {warning}", highlight=False)
    if as_json:
        print_json(result.to_dict())
        return
    depth: dict[str, int] = {}  # parents come before their children in the result
    for r in result.runs:
        depth[r.mlflow_run_id] = depth.get(r.parent_mlflow_run_id or "", -1) + 1
    print_table(
        f"exported to {result.uri} (experiment {config.experiment!r}, id {result.experiment_id})",
        ["genlab run", "name (nested)", "mlflow run", "", "new points", "copied"],
        [
            (r.genlab_run_id, "  " * depth[r.mlflow_run_id] + r.name, r.mlflow_run_id, "created" if r.created else "updated",
             r.metric_points_logged, r.artifacts_copied)
            for r in result.runs
        ],
    )  # fmt: skip
    console.print(f"{len(result.runs)} runs: {result.created} created, {len(result.runs) - result.created} updated")


def _print_chain(nodes: list[dict], runs_key: str, next_key: str, title: str) -> None:
    if not nodes:
        return
    console.print(f"[bold]{title}[/]")

    def walk(items: list[dict], depth: int) -> None:
        for node in items:
            console.print("  " * depth + f"artifact {node['artifact']} ({node['kind']})", highlight=False)
            for run in node[runs_key]:
                console.print("  " * (depth + 1) + f"<- run {run['run']} ({run['kind']})", highlight=False)
                walk(run[next_key], depth + 2)

    walk(nodes, 1)
