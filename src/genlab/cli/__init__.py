"""The ``genlab`` command: a thin layer that parses, calls the library, and prints.

Errors the user can fix (:class:`genlab.errors.GenlabError`) end in one line on stderr and a non-zero
exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import typer

from genlab.cli import (
    adapters, align, demo, estimate, evaluate, feedback, finetune, generate, models, optimize, prompt, runs,
)
from genlab.cli import agent
from genlab.cli import sandbox
from genlab.cli import rag
from genlab.cli import batch
from genlab.cli import serve
from genlab.cli import report, run
from genlab.cli import export
from genlab.errors import GenlabError

app = typer.Typer(
    name="genlab",
    help="genlab: the generative-AI project lifecycle on open models, on your own machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from genlab import __version__

        typer.echo(f"genlab {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """genlab: the generative-AI project lifecycle on open models, on your own machine."""


app.add_typer(models.app, name="models")
app.add_typer(runs.app, name="runs")
app.add_typer(align.app, name="align")
app.add_typer(feedback.app, name="feedback")
app.add_typer(prompt.app, name="prompt")
app.add_typer(adapters.app, name="adapters")
app.add_typer(optimize.app, name="optimize")
app.add_typer(agent.app, name="agent")
app.add_typer(sandbox.app, name="sandbox")
app.add_typer(rag.app, name="rag")
app.add_typer(export.app, name="export")
app.command(name="generate")(generate.generate_command)
app.command(name="chat")(generate.chat_command)
app.add_typer(evaluate.app, name="eval")
app.command(name="compare")(evaluate.compare_command)
app.command(name="estimate")(estimate.estimate_command)
app.command(name="finetune")(finetune.finetune_command)
app.command(name="demo")(demo.demo_command)
app.command(name="batch")(batch.batch_command)
app.command(name="serve")(serve.serve_command)
app.command(name="run")(run.run_command)
app.command(name="report")(report.report_command)


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        typer.echo("aborted.", err=True)
        sys.exit(130)
    except typer.TyperException as error:  # a bad flag or argument: one line, like our own errors
        ctx = getattr(error, "ctx", None)
        if type(error).__name__ == "NoArgsIsHelpError":  # help was asked for by giving nothing
            typer.echo(ctx.get_help() if ctx is not None else "", err=False)
            sys.exit(0)
        where = f"{ctx.command_path}: " if ctx is not None else ""
        typer.echo(f"error: {where}{error.format_message()}", err=True)
        sys.exit(getattr(error, "exit_code", 2) or 2)
    except GenlabError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted.", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
