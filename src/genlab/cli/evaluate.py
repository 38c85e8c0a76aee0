"""`genlab eval` (with `genlab eval judge`) and `genlab compare`: the evaluation stage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from genlab.cli.generation_options import MaxNewTokens
from genlab.cli.output import console, err_console, print_json, print_table

if TYPE_CHECKING:  # the library is imported when a command runs, so `genlab --help` stays fast
    from genlab.evaluation.run import EvalResult


app = typer.Typer(help="Score a model on a dataset, on lm-eval tasks, or two runs against each other with a judge.")


@app.callback(invoke_without_command=True)
def eval_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="Pack name, model folder, GGUF file or hub id.")] = "smollm2-135m-instruct",
    data: Annotated[str, typer.Option(help="'builtin', a data file or hub id; for multiple-choice, a task.")] = "builtin",
    task: Annotated[str, typer.Option(help="summarize, generate or multiple-choice.")] = "summarize",
    metrics: Annotated[str, typer.Option(help="Comma-separated: rouge, bleu, toxicity, exact_match, length.")] = "rouge",
    adapter: Annotated[str | None, typer.Option(help="A peft adapter: a folder or a name in $GENLAB_HOME/adapters.")] = None,
    limit: Annotated[int | None, typer.Option(help="Score only the first N examples.")] = None,
    template: Annotated[str | None, typer.Option(help="Prompt template name or file (default per task).")] = None,
    shots: Annotated[int, typer.Option(min=0, help="Solved examples in each prompt.")] = 0,
    input_field: Annotated[str, typer.Option(help="The field the model reads.")] = "dialogue",
    target_field: Annotated[str, typer.Option(help="The reference field, or several: summary1,summary2,summary3.")] = "summary",
    harness: Annotated[str | None, typer.Option(help="lm-eval tasks, comma-separated (e.g. everyday-facts).")] = None,
    harness_include: Annotated[list[str] | None, typer.Option(help="A folder of lm-eval task YAMLs (repeatable).")] = None,
    num_fewshot: Annotated[int | None, typer.Option(min=0, help="lm-eval: solved examples per prompt.")] = None,
    max_new_tokens: MaxNewTokens = 64,
    batch_size: Annotated[int, typer.Option(min=1, help="Prompts per forward pass.")] = 8,
    toxicity_model: Annotated[str | None, typer.Option(help="A HF classifier for toxicity (default: profanity-check).")] = None,
    toxic_label: Annotated[str | None, typer.Option(help="The classifier's label meaning toxic (e.g. hate).")] = None,
    chat: Annotated[bool, typer.Option("--chat/--no-chat", help="Wrap prompts in the chat template.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Score a model on a dataset (or lm-eval tasks with --harness); predictions are kept and the run is recorded."""
    from genlab.evaluation.generation_metrics import parse_metric_names
    from genlab.evaluation.run import evaluate, evaluate_harness
    from genlab.generation import GenerationSettings

    if ctx.invoked_subcommand is not None:
        return
    if harness is not None:
        err_console.print(f"lm-eval {harness} on {model}{f' + {adapter}' if adapter else ''}")
        result = evaluate_harness(
            model, harness, adapter=adapter, include=harness_include or [], num_fewshot=num_fewshot, limit=limit,
            batch_size=batch_size,
        )  # fmt: skip
        _print_eval(result, f"lm-eval {harness} on {model}", as_json)
        return
    names = parse_metric_names(metrics) if task != "multiple-choice" else []
    with err_console.status(f"evaluating {model} on {data}"):
        result = evaluate(
            model, data, task=task, metrics=names, limit=limit, adapter=adapter, template=template, shots=shots,
            input_field=input_field, target_field=target_field,
            settings=GenerationSettings(max_new_tokens=max_new_tokens), batch_size=batch_size, chat=chat,
            metric_options={"toxicity_model": toxicity_model, "toxic_label": toxic_label},
        )  # fmt: skip
    _print_eval(result, f"eval of {model} on {data}", as_json)


def _print_eval(result: EvalResult, title: str, as_json: bool) -> None:
    if as_json:
        print_json(result.to_dict())
        return
    rows = []
    for name, value in result.metrics.items():
        low_high = result.intervals.get(name)
        rows.append((name, f"{value:.4f}", f"[{low_high[0]:.4f}, {low_high[1]:.4f}]" if low_high else ""))
    print_table(f"{title} ({result.n} examples)", ["metric", "value", "95% interval"], rows)
    console.print(f"predictions: {result.predictions}\nrecorded as run [bold]{result.run_id}[/]")


def compare_command(
    run_ids: Annotated[list[str], typer.Argument(help="Run ids; the first is the baseline.")],
    samples: Annotated[int, typer.Option(min=0, help="Sample predictions in the report.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Compare runs metric by metric, with the absolute improvement over the first, and write an HTML report."""
    from genlab.evaluation.compare import compare_runs, is_score, paired_text, run_label

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
            bounds = (comparison.intervals.get(metric) or [None] * len(comparison.runs))[index]
            text = "—" if value is None else f"{value:.4f}"
            if bounds is not None:
                text += f" [{bounds[0]:.4f}, {bounds[1]:.4f}]"
            if index > 0 and change is not None:
                text += f" ({change:+.2f}{' pp' if is_score(metric) else ''})"
            cells.append(text)
        rows.append(cells)
    print_table("improvement over run 1 (percentage points for scores); [95% bootstrap interval]", columns, rows)
    paired_rows = [
        [metric] + [paired_text(metric, p) if p else "—" for p in comparison.paired[metric][1:]]
        for metric in comparison.metrics
        if any(comparison.paired.get(metric, [])[1:])
    ]
    if paired_rows:
        print_table("paired difference from run 1 on the same rows [95% paired bootstrap interval]",
                    ["metric"] + columns[2:], paired_rows)  # fmt: skip
    for index, note in enumerate(comparison.paired_notes):
        if note:
            console.print(f"run {index + 1}: {note}")
    console.print(f"report: {comparison.report}")


@app.command(name="judge")
def judge_command(
    run_a: Annotated[str, typer.Argument(help="The baseline run (a `genlab eval` run id).")],
    run_b: Annotated[str, typer.Argument(help="The challenger run, scored on the same rows.")],
    judge: Annotated[str, typer.Option(help="A local model, openai:MODEL (an OpenAI-compatible provider) or human.")] = "smollm2-135m-instruct",
    limit: Annotated[int | None, typer.Option(help="Judge only the first N shared rows.")] = None,
    both_orders: Annotated[bool, typer.Option("--both-orders/--one-order", help="Ask each pair in both orders.")] = True,
    tie_margin: Annotated[float, typer.Option(help="A local judge's p(A) this close to 1/2 is a tie.")] = 0.05,
    chat: Annotated[bool, typer.Option("--chat/--no-chat", help="Wrap the question in the judge's chat template.")] = True,
    batch_size: Annotated[int, typer.Option(min=1, help="Questions per forward pass (local judge).")] = 8,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Pairwise preference of a judge between two runs' predictions: win rate with its interval, order agreement."""
    from genlab.evaluation.judge_run import judge_runs

    result = judge_runs(
        run_a, run_b, judge=judge, limit=limit, both_orders=both_orders, tie_margin=tie_margin, chat=chat,
        batch_size=batch_size, show=err_console.print,
    )  # fmt: skip
    if as_json:
        print_json(result.to_dict())
        return
    low, high = result.intervals["win_rate"]
    m = result.metrics
    rows = [
        ("win rate of run B", f"{m['win_rate']:.3f} [{low:.3f}, {high:.3f}] (95% bootstrap; ties count half)"),
        ("wins / losses / ties", f"{m['wins']:.0f} / {m['losses']:.0f} / {m['ties']:.0f} of {result.n} rows"),
        ("order agreement", f"{m['order_agreement']:.3f}" + ("" if m["order_agreement"] >= 0.8 else "  (low: the judge flips with the order; do not trust it)")),
    ]
    print_table(f"{judge} judging {run_b} (B) against {run_a} (A)", ["", ""], rows)
    console.print(f"judgements: {result.judgements}\nrecorded as run [bold]{result.run_id}[/]")
