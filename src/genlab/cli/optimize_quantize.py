"""`genlab optimize quantize --model M --method int8-dynamic|fp16|bf16|onnx-int8 [...]`: the registered method
``quantize`` (:mod:`genlab.optimize.quantize`); the options fill its recipe, which checks them."""

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
from genlab.lineage import LineageStore
from genlab.registry import get_method

MethodOption = Annotated[
    str, typer.Option("--method", help="int8-dynamic (int8 Linear layers), fp16, bf16, or onnx-int8 (onnxruntime).")
]


def quantize_command(
    model: ModelOption = "smollm2-135m-instruct",
    method: MethodOption = "int8-dynamic",
    eval_data: EvalDataOption = "builtin",
    metric: MetricOption = "rouge1",
    eval_limit: EvalLimitOption = 20,
    input_field: InputFieldOption = "dialogue",
    target_field: TargetFieldOption = "summary",
    output: OutputOption = None,
    quantize_lm_head: Annotated[
        bool,
        typer.Option(
            "--quantize-lm-head/--fp32-lm-head",
            help="int8-dynamic: the LM head (and a tied embedding) in int8, its top 64 logits recomputed (default), or fp32.",
        ),
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Quantise a model after training, save it with lineage, and measure it against the original."""
    recipe = {
        "model": model, "quantize": {"method": method, "quantize_lm_head": quantize_lm_head},
        "evaluation": eval_settings(eval_data, metric, eval_limit, input_field, target_field), "output": output,
    }  # fmt: skip
    with LineageStore() as store:
        result = get_method("quantize", "optimize").run(recipe, store=store, progress=not as_json)
    print_result(result, as_json)
