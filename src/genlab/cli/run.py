"""`genlab run RECIPE [key=value ...]`: a lifecycle recipe from scope to deployment (see genlab.pipeline)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from genlab.cli.output import console, err_console, print_json, print_table

STEP_MARKS = {"ran": "[green]✓[/]", "reused": "[blue]↺[/]", "failed": "[red]✗[/]", "not run": "·"}


def run_command(
    recipe: Annotated[str, typer.Argument(help="A lifecycle recipe file, or a builtin one (lifecycle-demo).")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="key=value changes, e.g. prompt.shots=[0,1] adapt.lora.training.max_steps=2.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Run every step again, even those that could be reused.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show step progress and training bars.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run a lifecycle recipe; finished steps whose inputs are unchanged are reused, so a rerun resumes."""
    from genlab.pipeline import load_lifecycle_recipe

    loaded, recipe_dir = load_lifecycle_recipe(recipe, overrides or [])
    result = run_with_progress(loaded, recipe_dir, source=str(recipe), overrides=overrides or [], force=force,
                               progress=progress and not as_json)  # fmt: skip
    if as_json:
        print_json(result.to_dict())
        return
    print_lifecycle(result)


def run_with_progress(recipe: Any, recipe_dir: Any, *, progress: bool, **options: Any) -> Any:
    """Run the lifecycle, printing each step as it starts, finishes or is reused (on stderr)."""
    from genlab.pipeline import LifecycleStepError, run_lifecycle

    def on_event(kind: str, step: str, detail: str) -> None:
        if not progress:
            return
        if kind == "start":
            err_console.print(f"[bold]▸ {step}[/]")
        elif kind == "progress":
            err_console.print(f"  [dim]{detail}[/]", highlight=False)
        elif kind == "done":
            err_console.print(f"{STEP_MARKS['ran']} {step} [dim]({detail})[/]")
        elif kind == "reused":
            err_console.print(f"{STEP_MARKS['reused']} {step} [dim](unchanged: reused run {detail})[/]")
        elif kind == "failed":
            err_console.print(f"{STEP_MARKS['failed']} {step}")

    try:
        return run_lifecycle(recipe, recipe_dir=recipe_dir, on_event=on_event, show_progress=progress, **options)
    except LifecycleStepError as error:
        if error.report:
            err_console.print(f"report: {error.report}", highlight=False)
        raise


def print_lifecycle(result: Any) -> None:
    """The steps, the comparison with the base (if the recipe evaluates), the optimisation and how to serve."""
    print_table(
        f"lifecycle {result.recipe}",
        ["step", "status", "run", "time"],
        [(s.step, f"{STEP_MARKS[s.status]} {s.status}", s.run_id or "", f"{s.seconds:.1f} s" if s.status == "ran" else "")
         for s in result.steps],
    )  # fmt: skip
    states = {s.step: s.state for s in result.steps if s.state}
    if "evaluate" in states:
        print_comparison(states["evaluate"])
    if "optimise" in states:
        table = states["optimise"]["summary"]["table"]
        print_table(table["title"], table["columns"], table["rows"])
    if "deploy" in states:
        console.print(f"serve: {states['deploy']['summary']['command']}", highlight=False)
    if result.report:
        console.print(f"report: {result.report}", highlight=False)
    console.print(f"recorded as lifecycle run [bold]{result.run_id}[/] — `genlab report {result.run_id}` redraws the report")


def print_comparison(evaluate_state: dict[str, Any]) -> None:
    """Every candidate's scores on the held-out rows with the change over the base, in points."""
    import json
    from pathlib import Path

    from genlab.evaluation.compare import is_score

    summary = evaluate_state["summary"]
    data = json.loads(Path(evaluate_state["outputs"]["comparison"]["path"]).read_text(encoding="utf-8"))
    names = data["candidates"]
    rows = []
    for metric in data["metrics"]:
        if not is_score(metric):
            continue
        cells = []
        for index, value in enumerate(data["values"][metric]):
            change = data["improvements"][metric][index]
            text = "—" if value is None else f"{value:.4f}"
            if index > 0 and change is not None:
                text += f" ({change:+.2f} pp)"
            cells.append(text)
        rows.append((f"{metric} *" if metric == summary["metric"] else metric, *cells))
    target = summary.get("target")
    verdict = ""
    if summary.get("target_met") is not None:
        verdict = f"; target {target:.4f} {'met' if summary['target_met'] else 'not met'}"
    print_table(
        f"held-out scores (change over base in percentage points; * metric of record, best: {summary['best']}{verdict})",
        ["metric", *names],
        rows,
    )
