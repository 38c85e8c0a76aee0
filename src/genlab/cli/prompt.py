"""`genlab prompt compare|templates`: in-context learning, the course's first lab."""

from __future__ import annotations

from typing import Annotated

import typer

from genlab.cli.generation_options import MaxNewTokens, RepetitionPenalty, settings_from_flags
from genlab.cli.output import console, err_console, print_json, print_table

app = typer.Typer(help="Prompt engineering: templates and zero/one/few-shot comparisons.", no_args_is_help=True)


@app.command("compare")
def compare_command(
    model: Annotated[str, typer.Option(help="Pack name, model folder, GGUF file or hub id.")] = "smollm2-135m-instruct",
    data: Annotated[str, typer.Option(help="'builtin', a JSONL/CSV/Parquet file, or a hub dataset id.")] = "builtin",
    shots: Annotated[str, typer.Option(help="Shot counts to compare, e.g. 0,1,5.")] = "0,1,2",
    limit: Annotated[int, typer.Option(help="How many examples to score (the first N rows).")] = 20,
    template: Annotated[str, typer.Option(help="A builtin template name or a template file.")] = "summarize",
    selection: Annotated[str, typer.Option(help="How examples are chosen: first, random or similar.")] = "first",
    seed: Annotated[int, typer.Option(help="Seed for random selection.")] = 0,
    input_field: Annotated[str, typer.Option(help="The field the model reads.")] = "dialogue",
    target_field: Annotated[str, typer.Option(help="The field holding the reference output.")] = "summary",
    max_new_tokens: MaxNewTokens = 64,
    repetition_penalty: RepetitionPenalty = 1.0,
    batch_size: Annotated[int, typer.Option(min=1, help="Prompts per forward pass.")] = 8,
    chat: Annotated[bool, typer.Option("--chat/--no-chat", help="Wrap prompts in the chat template.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Score zero-, one- and few-shot prompts side by side with ROUGE (greedy, reproducible)."""
    from genlab.prompting.compare import compare_shots, parse_shots

    shot_counts = parse_shots(shots)
    settings = settings_from_flags(max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty)
    with err_console.status("starting") as status:
        comparison = compare_shots(
            model, data, shot_counts, limit=limit, template=template, selection=selection, seed=seed,
            input_field=input_field, target_field=target_field, settings=settings, batch_size=batch_size,
            chat=chat, on_progress=status.update,
        )  # fmt: skip
    if as_json:
        print_json(comparison.to_dict())
        return
    print_table(
        f"{comparison.model} on {comparison.data} ({comparison.limit} examples, template {comparison.template}, "
        f"{comparison.selection} examples)",
        ["shots", "ROUGE-1", "ROUGE-2", "ROUGE-L", "ROUGE-Lsum", "prompt tokens", "dropped", "tokens/s"],
        [
            (
                r.shots, f"{r.rouge1:.4f}", f"{r.rouge2:.4f}", f"{r.rougeL:.4f}", f"{r.rougeLsum:.4f}",
                f"{r.mean_prompt_tokens:.0f}", r.dropped_examples, f"{r.new_tokens / r.seconds:.1f}",
            )  # fmt: skip
            for r in comparison.results
        ],
    )
    first = comparison.results[0].samples[0] if comparison.results[0].samples else None
    if first is not None:
        console.print(f"\n[bold]example {first['id']}[/] — reference: {first['reference']}", highlight=False)
        for result in comparison.results:
            console.print(f"  {result.shots}-shot: {result.samples[0]['prediction']}", highlight=False)
    console.print(f"\nrecorded as run [bold]{comparison.run_id}[/]")


@app.command("templates")
def templates_command() -> None:
    """List the builtin prompt templates."""
    from genlab.prompting.templates import builtin_template_names, get_template

    print_table(
        "builtin templates",
        ["name", "variables"],
        [(name, ", ".join(sorted(get_template(name).variables))) for name in builtin_template_names()],
    )
