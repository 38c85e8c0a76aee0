"""`genlab sandbox run FILE.py`: run a file through the sandbox PAL and ReAct use, to see what it allows."""

from __future__ import annotations

from typing import Annotated

import typer

from genlab.cli.output import console, err_console, print_json

app = typer.Typer(help="Run Python in the sandbox that model-written code runs in.", no_args_is_help=True)
UnsafeSandbox = Annotated[bool, typer.Option(
    "--unsafe-sandbox", help="Run even where the kernel refuses a sandbox layer (Landlock, seccomp, namespaces); warns.")]


@app.command(name="layers")
def layers_command(as_json: Annotated[bool, typer.Option("--json", help="Print {granted, missing}.")] = False) -> None:
    """Show which kernel layers the sandbox gets here; exit 1 if one is missing (model code is then refused)."""
    from genlab.apps.sandbox import probe_layers

    layers = probe_layers()
    if as_json:
        print_json({"granted": layers.granted, "missing": layers.missing})
    else:
        for name, what in layers.granted.items():
            console.print(f"granted  {name}: {what}", markup=False, highlight=False)
        for name, why in layers.missing.items():
            console.print(f"MISSING  {name}: {why}", markup=False, highlight=False)
    if layers.missing:
        raise typer.Exit(1)


@app.command(name="run")
def run_command(
    file: Annotated[str, typer.Argument(help="A Python file.")],
    wall_seconds: Annotated[float, typer.Option(min=0.1, help="Wall-clock limit; the process group is killed.")] = 10.0,
    cpu_seconds: Annotated[int, typer.Option(min=1, help="CPU time limit (RLIMIT_CPU).")] = 5,
    memory_mb: Annotated[int, typer.Option(min=64, help="Address-space limit (RLIMIT_AS).")] = 256,
    max_output: Annotated[int, typer.Option(min=1, help="Printed characters before the program is stopped.")] = 20_000,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"ok", "stdout", "error"}.')] = False,
    unsafe_sandbox: UnsafeSandbox = False,
) -> None:
    """Run FILE in the sandbox; exit 1 when the program fails, is refused or reaches a limit."""
    from genlab.apps.sandbox import SandboxLimits, probe_layers, run_file

    limits = SandboxLimits(
        wall_seconds=wall_seconds, cpu_seconds=cpu_seconds, memory_mb=memory_mb, max_output_chars=max_output,
        allow_unsafe=unsafe_sandbox,
    )
    if unsafe_sandbox:
        err_console.print(probe_layers().unsafe_warning(), style="bold red", highlight=False, markup=False, soft_wrap=True)
    result = run_file(file, limits)
    if result.missing_layers:
        missing = ", ".join(result.missing_layers)
        err_console.print(f"warning: this program ran without {missing}.", style="bold red", highlight=False, markup=False)
    if as_json:
        print_json(result.to_dict())
    else:
        if result.stdout:
            console.out(result.stdout, end="", highlight=False)
        if result.error:
            err_console.print(f"sandbox: {result.error}", highlight=False, markup=False, soft_wrap=True)
    if not result.ok:
        raise typer.Exit(1)
