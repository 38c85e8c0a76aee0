"""Post-training quantisation (``genlab optimize quantize``), a one-shot transform: :mod:`.run` saves and
loads the quantised folders (int8-dynamic, fp16, bf16), :mod:`.int8_layers` holds the int8 modules and
:mod:`.onnx` the ONNX Runtime path (onnx-int8); the recipe is :mod:`.recipe`.
"""

from __future__ import annotations

from genlab.methods import Method, MethodResult, RunOptions
from genlab.optimize.quantize.recipe import QuantizeRecipe


def _train(recipe: QuantizeRecipe, options: RunOptions) -> MethodResult:
    # torch/transformers are imported when the method runs, not when the CLI starts (genlab.methods).
    from genlab.optimize.quantize.run import quantize

    return quantize(recipe, store=options.store).method_result("quantize")


METHOD = Method(
    name="quantize",
    group="optimize",
    recipe_schema=QuantizeRecipe,
    train=_train,
    help="Quantise a trained model (int8-dynamic, fp16, bf16 or onnx-int8) and measure it against the original.",
    data_fields=("evaluation.data",),
)
