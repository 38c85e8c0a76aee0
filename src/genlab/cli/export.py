"""`genlab export gguf`: a model, or a model + adapter, as GGUF for llama.cpp with an Ollama Modelfile."""

from __future__ import annotations

from typing import Annotated

import typer

from genlab.cli.output import console, err_console, print_json

app = typer.Typer(help="Export models and adapters to the formats local servers run (GGUF, Ollama).", no_args_is_help=True)


@app.command("gguf")
def gguf_command(
    source: Annotated[str, typer.Argument(help="A model pack, a model folder, or an adapter (name or folder).")],
    output: Annotated[str, typer.Option(help="A new folder for the GGUF file(s) and the Modelfile.")],
    quant: Annotated[str, typer.Option(help="f32, f16, q8_0; with llama-cpp-python also q4_k_m, q5_k_m, q6_k, q4_0, ...")] = "f16",
    lora: Annotated[bool, typer.Option("--lora", help="Write an adapter as a GGUF LoRA adapter (beside its base) instead of merging it.")] = False,
    base: Annotated[str | None, typer.Option(help="An adapter's base model (default: the one it records).")] = None,
    base_gguf: Annotated[str | None, typer.Option(help="With --lora: the base's GGUF exported before, used instead of a new one.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Export to GGUF (llama.cpp, Ollama); the export is recorded in lineage."""
    from pathlib import Path

    from genlab.export.run import ExportRequest, export_gguf

    request = ExportRequest(source=source, output=Path(output), quant=quant, lora=lora, base=base,
                            base_gguf=Path(base_gguf) if base_gguf else None)  # fmt: skip
    with err_console.status(f"exporting {source} to GGUF ({request.quant})"):
        result = export_gguf(request)
    if as_json:
        print_json(result.to_dict())
        return
    console.print(f"model GGUF: {result.model_gguf}")
    if result.adapter_gguf:
        console.print(f"LoRA adapter GGUF: {result.adapter_gguf}")
    console.print(f"Modelfile: {result.modelfile}\nfor Ollama: {result.ollama_command}")
    console.print(f"recorded as run [bold]{result.run_id}[/]")
