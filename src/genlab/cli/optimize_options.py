"""What the `genlab optimize` subcommands share: the options for the model and the measurement, and the report."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from genlab.cli.output import print_json, print_table

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


def eval_spec(data: str, metric: str, limit: int, input_field: str, target_field: str) -> Any:
    """The validated :class:`EvalSpec` from the shared options (a bad value fails in one sentence)."""
    from pydantic import ValidationError

    from genlab.errors import InvalidValueError
    from genlab.optimize.measure import EvalSpec

    try:
        return EvalSpec(data=data, metric=metric, limit=limit, input_field=input_field, target_field=target_field)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise InvalidValueError(f"--{field.replace('_', '-')} is not valid: {first['msg']}.") from None


def print_report(report: Any, as_json: bool) -> None:
    if as_json:
        print_json(report.to_dict())
        return
    title, columns, rows = report.table()
    print_table(title, columns, rows)

