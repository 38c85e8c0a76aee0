"""`genlab eval` and `genlab compare`: the evaluation stage."""

from __future__ import annotations

from typing import Annotated

import typer

from genlab.cli.generation_options import MaxNewTokens
from genlab.cli.output import console, err_console, print_json, print_pairs, print_table


def eval_command(
    model: Annotated[str, typer.Option(help="Pack name, model folder, GGUF file or hub id.")] = "smollm2-135m-instruct",
    data: Annotated[str, typer.Option(help="'builtin', a data file or hub id; for multiple-choice, a task.")] = "builtin",
    task: Annotated[str, typer.Option(help="summarize, generate or multiple-choice.")] = "summarize",
    metrics: Annotated[str, typer.Option(help="Comma-separated: rouge, bleu, toxicity, exact_match, length.")] = "rouge",
    adapter: Annotated[str | None, typer.Option(help="A peft adapter: a folder or a name in $GENLAB_HOME/adapters.")] = None,
    limit: Annotated[int | None, typer.Option(help="Score only the first N examples.")] = None,
    template: Annotated[str | None, typer.Option(help="Prompt template name or file (default per task).")] = None,
    shots: Annotated[int, typer.Option(min=0, help="Solved examples in each prompt.")] = 0,
    input_field: Annotated[str, typer.Option(help="The field the model reads.")] = "dialogue",
    target_field: Annotated[str, typer.Option(help="The field holding the reference.")] = "summary",
    max_new_tokens: MaxNewTokens = 64,
    batch_size: Annotated[int, typer.Option(min=1, help="Prompts per forward pass.")] = 8,
    toxicity_model: Annotated[str | None, typer.Option(help="A HF classifier for toxicity (default: profanity-check).")] = None,
    toxic_label: Annotated[str | None, typer.Option(help="The classifier's label meaning toxic (e.g. hate).")] = None,
    chat: Annotated[bool, typer.Option("--chat/--no-chat", help="Wrap prompts in the chat template.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Score a model on a dataset; predictions are kept and the run is recorded in lineage."""
    from genlab.evaluation.generation_metrics import parse_metric_names
    from genlab.evaluation.run import evaluate
    from genlab.generation import GenerationSettings

    names = parse_metric_names(metrics) if task != "multiple-choice" else []
    with err_console.status(f"evaluating {model} on {data}"):
        result = evaluate(
            model, data, task=task, metrics=names, limit=limit, adapter=adapter, template=template, shots=shots,
            input_field=input_field, target_field=target_field,
            settings=GenerationSettings(max_new_tokens=max_new_tokens), batch_size=batch_size, chat=chat,
            metric_options={"toxicity_model": toxicity_model, "toxic_label": toxic_label},
        )  # fmt: skip
    if as_json:
        print_json(result.to_dict())
        return
    print_pairs(
        f"eval of {model} on {data} ({result.n} examples)",
        [(name, f"{value:.4f}") for name, value in result.metrics.items()],
    )
    console.print(f"predictions: {result.predictions}\nrecorded as run [bold]{result.run_id}[/]")


def compare_command(
    run_ids: Annotated[list[str], typer.Argument(help="Run ids; the first is the baseline.")],
    samples: Annotated[int, typer.Option(min=0, help="Sample predictions in the report.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Compare runs metric by metric, with the absolute improvement over the first, and write an HTML report."""
    from genlab.evaluation.compare import compare_runs, is_score, run_label

    comparison = compare_runs(run_ids, samples=samples)
    if as_json:
        print_json(comparison.to_dict())
        return
    print_table(None, ["#", "run", "model / setting"], [(i + 1, r["id"], run_label(r)) for i, r in enumerate(comparison.runs)])
    columns = ["metric"] + [f"run {i + 1}" for i in range(len(comparison.runs))]
    rows = []
    for metric in comparison.metrics:
        cells = [metric]
        for index, value in enumerate(comparison.values[metric]):
            change = comparison.improvements[metric][index]
            text = "—" if value is None else f"{value:.4f}"
            if index > 0 and change is not None:
                text += f" ({change:+.2f}{' pp' if is_score(metric) else ''})"
            cells.append(text)
        rows.append(cells)
    print_table("improvement over run 1 (percentage points for scores)", columns, rows)
    console.print(f"report: {comparison.report}")
