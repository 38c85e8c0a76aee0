"""`genlab adapters list|show|merge`: the peft adapters under $GENLAB_HOME/adapters."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from genlab.cli.output import console, err_console, print_json, print_pairs, print_table

app = typer.Typer(help="Adapters (LoRA, prompt tuning, ...) and merging them into their base.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
AdapterArgument = Annotated[str, typer.Argument(help="An adapter name under $GENLAB_HOME/adapters, or a folder.")]


def _percent(value: Any) -> str:
    return f"{value:.3g}%" if isinstance(value, (int, float)) else ""


@app.command("list")
def list_command(as_json: JsonFlag = False) -> None:
    """List the adapters under $GENLAB_HOME/adapters."""
    from genlab.models.adapters import adapters_dir, list_adapters

    adapters = list_adapters()
    if as_json:
        print_json([info.to_dict() for info in adapters])
        return
    if not adapters:
        console.print(f"no adapters in {adapters_dir()} yet: `genlab finetune` saves them there.")
        return
    print_table(
        f"adapters in {adapters_dir()}",
        ["name", "method", "peft type", "base model", "trainable", "run"],
        [
            (a.name, a.method, a.peft_type, a.base_model, _percent(a.extra.get("trainable_percent")), a.run_id)
            for a in adapters
        ],
    )


@app.command("show")
def show_command(adapter: AdapterArgument, as_json: JsonFlag = False) -> None:
    """Show what an adapter records: method, base model and its fingerprint, the run that trained it."""
    from genlab.models.adapters import read_adapter_info

    info = read_adapter_info(adapter)
    if as_json:
        print_json(info.to_dict())
        return
    print_pairs(f"adapter {info.name}", list(info.to_dict().items()))


@app.command("merge")
def merge_command(
    adapter: AdapterArgument,
    output: Annotated[str, typer.Option(help="A new folder for the merged model.")],
    model: Annotated[str | None, typer.Option(help="The base model (default: the one the adapter records).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Merge a weight adapter (LoRA, ...) into its base and save a standalone model; recorded in lineage."""
    from genlab.models.merge import merge_adapter_into_model

    with err_console.status(f"merging {adapter}"):
        result = merge_adapter_into_model(adapter, output, model=model)
    if as_json:
        print_json(result.to_dict())
        return
    console.print(f"merged {result.adapter} into {result.model}\noutput: {result.output}")
    console.print(f"recorded as run [bold]{result.run_id}[/]")
