"""`genlab demo`: the main job on the embedded default model and data."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from genlab.cli.output import console, err_console, print_pairs, print_table


def demo_command(
    model: Annotated[str, typer.Option(help="Model to run the demo on.")] = "smollm2-135m-instruct",
    dialogue: Annotated[int, typer.Option(min=0, help="Index of the builtin dialogue to summarise.")] = 0,
) -> None:
    """Load the default model, show its card and memory estimate, summarise a builtin dialogue."""
    from genlab.cli.models import card_rows
    from genlab.demo import run_demo

    status = err_console.status("reading the model card")
    status.start()

    def on_step(name: str, value: Any) -> None:
        if name == "card":
            status.stop()
            print_pairs(f"1. select: model card of {value.name}", card_rows(value))
        elif name == "estimates":
            print_estimates_side_by_side(value)
            status.update("loading the model")
            status.start()
        elif name == "loaded":
            status.update("summarising a builtin dialogue")

    try:
        result = run_demo(model, dialogue, on_step=on_step)
    finally:
        status.stop()
    console.print(f"\n[bold]3. prompt: summarise builtin dialogue {result.dialogue['id']}[/]")
    console.print(result.dialogue["dialogue"], highlight=False)
    console.print(f"\n[bold]generated summary:[/] {result.generation.text}", highlight=False)
    console.print(f"[bold]human summary:[/]     {result.dialogue['summary']}", highlight=False)
    print_table(
        None,
        ["ROUGE-1", "ROUGE-2", "ROUGE-L", "new tokens", "tokens/s"],
        [
            (
                f"{result.rouge['rouge1']:.3f}",
                f"{result.rouge['rouge2']:.3f}",
                f"{result.rouge['rougeL']:.3f}",
                result.generation.new_tokens,
                f"{result.generation.new_tokens / result.seconds:.1f}",
            )
        ],
    )
    console.print(f"\nrecorded as run [bold]{result.run_id}[/] — `genlab runs show {result.run_id}`")


def print_estimates_side_by_side(estimates: dict[str, Any]) -> None:
    """One table, a column per mode: what serving, full fine-tuning and LoRA each need in memory."""
    rows = [
        ("weights", "weights_gb"),
        ("KV cache (2,048 tokens)", "kv_cache_gb"),
        ("optimizer states", "optimizer_gb"),
        ("gradients", "gradients_gb"),
        ("activations", "activations_gb"),
        ("total memory", None),
    ]

    def gb(value: float) -> str:
        return f"{value:.2f} GB" if value >= 0.01 or value == 0 else f"{value * 1000:.2f} MB"

    table = []
    for label, key in rows:
        cells = []
        for est in estimates.values():
            if key == "kv_cache_gb" and est.mode != "infer":
                cells.append("-")  # training runs full sequences; no cache to keep
                continue
            value = (est.infer_total_gb if est.mode == "infer" else est.train_total_gb) if key is None else getattr(est, key)
            cells.append(gb(value))
        table.append((label, *cells))
    table.append(("trainable parameters", *(f"{e.trainable_params:,}" for e in estimates.values())))
    print_table("2. estimate (fp32)", ["", *estimates], table)
