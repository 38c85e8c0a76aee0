"""What the `genlab optimize` subcommands share: the options for the model and the measurement, and the report."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from genlab.cli.output import print_json, print_table
from genlab.methods import MethodResult

ModelOption = Annotated[str, typer.Option("--model", "-m", help="The model to optimise (name, folder or hub id).")]
EvalDataOption = Annotated[
    str, typer.Option("--eval-data", help="Data to measure quality on: a file, builtin set or hub id.")
]
MetricOption = Annotated[str, typer.Option("--metric", help="rouge1 (summaries) or perplexity (of the targets).")]
EvalLimitOption = Annotated[int, typer.Option("--eval-limit", help="Examples to score.")]
InputFieldOption = Annotated[str, typer.Option("--input-field", help="The input column of the eval data.")]
TargetFieldOption = Annotated[str, typer.Option("--target-field", help="The reference column of the eval data.")]
OutputOption = Annotated[str | None, typer.Option("--output", "-o", help="Folder for the optimised model.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def eval_settings(data: str, metric: str, limit: int, input_field: str, target_field: str) -> dict[str, Any]:
    """The shared options as a recipe's ``evaluation`` section (a :class:`genlab.optimize.measure.EvalSpec`)."""
    return {"data": data, "metric": metric, "limit": limit, "input_field": input_field, "target_field": target_field}


def print_result(result: MethodResult, as_json: bool) -> None:
    """The method's table, or with ``--json`` its details (the report as one JSON object)."""
    if as_json:
        print_json(result.details)
        return
    print_table(*result.table.as_tuple())
