"""The ``genlab`` command: a thin layer that parses, calls the library, and prints.

Errors the user can fix (:class:`genlab.errors.GenlabError`) end in one line on stderr and a non-zero
exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import typer

from genlab.cli import demo, estimate, models, runs
from genlab.errors import GenlabError

app = typer.Typer(
    name="genlab",
    help="genlab: the generative-AI project lifecycle on open models, on your own machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(models.app, name="models")
app.add_typer(runs.app, name="runs")
app.command(name="estimate")(estimate.estimate_command)
app.command(name="demo")(demo.demo_command)


def main() -> None:
    try:
        app()
    except GenlabError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted.", err=True)
        sys.exit(130)
