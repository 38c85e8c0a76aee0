"""`genlab report RUN_ID`: draw a lifecycle run's HTML report again from the lineage store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from genlab.cli.output import console


def report_command(
    run_id: Annotated[str, typer.Argument(help="A lifecycle run id (or a unique part of one).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to write the HTML file.")] = None,
) -> None:
    """Write the self-contained HTML report of a lifecycle run (steps, lineage graph, scores, curves)."""
    from genlab.pipeline import write_report

    console.print(f"report: {write_report(run_id, output)}", highlight=False)
