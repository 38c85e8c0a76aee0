"""`genlab optimize prune --model M --method unstructured|heads|neurons --sparsity S [...]`: the registered method
``prune`` (:mod:`genlab.optimize.prune`); the options fill its recipe, which checks them."""

from __future__ import annotations

from typing import Annotated

import typer

from genlab.cli.optimize_options import (
    EvalDataOption,
    EvalLimitOption,
    InputFieldOption,
    JsonFlag,
    MetricOption,
    ModelOption,
    OutputOption,
    TargetFieldOption,
    eval_settings,
    print_result,
)
from genlab.cli.output import console
from genlab.lineage import LineageStore
from genlab.registry import get_method


def prune_command(
    sparsity: Annotated[
        float, typer.Option("--sparsity", help="Fraction removed: of the weights (unstructured) or of neurons/heads.")
    ],
    model: ModelOption = "smollm2-135m-instruct",
    method: Annotated[
        str, typer.Option("--method", help="unstructured (zero weights), neurons (MLP) or heads (attention).")
    ] = "unstructured",
    scope: Annotated[
        str | None, typer.Option("--scope", help="global or layer (unstructured); structured methods are per layer.")
    ] = None,
    heads_unit: Annotated[
        str, typer.Option("--heads-unit", help="heads of a GQA model: whole KV groups (group) or query heads (query).")
    ] = "group",
    recover_steps: Annotated[int, typer.Option("--recover-steps", help="LoRA recovery batches after pruning.")] = 0,
    recover_data: Annotated[str | None, typer.Option("--recover-data", help="Rows to recover on.")] = None,
    eval_data: EvalDataOption = "builtin",
    metric: MetricOption = "rouge1",
    eval_limit: EvalLimitOption = 20,
    input_field: InputFieldOption = "dialogue",
    target_field: TargetFieldOption = "summary",
    output: OutputOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Prune a model by weight magnitude and measure it against the original."""
    settings = {
        "method": method, "sparsity": sparsity, "scope": scope, "heads_unit": heads_unit, "recover_steps": recover_steps,
        "recover_data": recover_data,
    }  # fmt: skip
    recipe = {
        "model": model, "prune": settings, "evaluation": eval_settings(eval_data, metric, eval_limit, input_field, target_field),
        "output": output,
    }  # fmt: skip
    with LineageStore() as store:
        result = get_method("prune", "optimize").run(recipe, store=store, progress=not as_json)
    print_result(result, as_json)
    if not as_json:
        details = result.details["details"]
        if "sparsity" in details:
            console.print(
                f"sparsity {details['sparsity']:.4f} of the Linear weights ({details['zeros']:,} zeros), "
                f"{details['model_sparsity']:.4f} of all parameters; stored densely (no size or speed gain)"
            )
        if "parameters_removed" in details:
            console.print(
                f"removed {details['parameters_removed']:,} parameters "
                f"({100 * details['parameters_removed_fraction']:.1f} %)"
            )
