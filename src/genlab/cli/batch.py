"""`genlab batch`: generate for every row of a JSONL file, resumably (genlab.serving.batch_transform)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from genlab.cli.output import err_console, print_json

SHOWN_BAD_ROWS = 10


def batch_command(
    input: Annotated[Path, typer.Argument(help="JSONL rows: {custom_id?, prompt | messages, max_tokens?, ...}.")],
    output: Annotated[Path, typer.Argument(help="JSONL results, in input order; rerun to continue after a stop.")],
    model: Annotated[str, typer.Option(help="Pack name, model folder, GGUF file or hub id.")] = "smollm2-135m-instruct",
    adapter: Annotated[str | None, typer.Option(help="A peft adapter: a folder or a name in $GENLAB_HOME/adapters.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Rows decoded at once.")] = 8,
    rows_per_write: Annotated[
        int | None, typer.Option("--rows-per-write", help="Rows between two durable appends (default 4 x batch size).")
    ] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Most tokens per answer (a row's max_tokens wins).")] = 256,
    temperature: Annotated[float, typer.Option(help="0 = greedy; above 0 samples (a row's temperature wins).")] = 0.0,
    top_p: Annotated[float, typer.Option("--top-p", help="Nucleus sampling threshold.")] = 1.0,
    top_k: Annotated[int, typer.Option("--top-k", help="Sample among the k likeliest tokens (0 = off).")] = 0,
    seed: Annotated[int | None, typer.Option(help="Sampling rows without a seed use this + their line number.")] = None,
    chat: Annotated[bool, typer.Option("--chat/--no-chat", help="Wrap prompts in the model's chat template.")] = True,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run a model over a JSONL file: one answer per row, bad rows to OUTPUT.errors.jsonl, resumable."""
    from genlab.serving.batch_transform import BatchConfig, run_batch

    config = BatchConfig(
        model=model, input=input, output=output, adapter=adapter, batch_size=batch_size, rows_per_write=rows_per_write,
        max_tokens=max_tokens, temperature=temperature, top_p=top_p, top_k=top_k, seed=seed, chat=chat,
    )  # fmt: skip
    try:
        summary = run_batch(config, progress=progress and not as_json)
    except KeyboardInterrupt:
        err_console.print(f"interrupted: the finished rows are saved in {config.output}; rerun the same command to continue.")
        raise
    if as_json:
        print_json({
            "output": str(summary.output), "errors_file": summary.errors_file and str(summary.errors_file),
            "rows": summary.rows, "done": summary.done, "generated": summary.generated, "resumed": summary.resumed,
            "errors": summary.errors, "bad_rows": [b.to_record() for b in summary.bad_rows],
            "prompt_tokens": summary.prompt_tokens, "completion_tokens": summary.completion_tokens,
            "seconds": round(summary.seconds, 3), "tokens_per_second": round(summary.tokens_per_second, 2),
            "run_id": summary.run_id,
        })  # fmt: skip
        return
    for bad in summary.bad_rows[:SHOWN_BAD_ROWS]:
        err_console.print(f"line {bad.line}: {bad.error}", markup=False, highlight=False, soft_wrap=True)
    if summary.errors > SHOWN_BAD_ROWS:
        err_console.print(f"... and {summary.errors - SHOWN_BAD_ROWS} more bad rows", markup=False)
    resumed = f" ({summary.resumed} from an earlier run)" if summary.resumed else ""
    errors = f", {summary.errors} errors in {summary.errors_file}" if summary.errors else ", 0 errors"
    typer.echo(
        f"{summary.done} done{resumed}{errors}; wrote {summary.output} "
        f"({summary.completion_tokens} tokens in {summary.seconds:.1f} s, run {summary.run_id})"
    )
