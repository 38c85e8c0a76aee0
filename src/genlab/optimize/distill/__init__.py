"""Knowledge distillation (``genlab optimize distill``): a smaller student trained on a teacher's
softened outputs and the targets (:mod:`.run`), with its loss (:mod:`.loss`) and student (:mod:`.student`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genlab.methods import Method, MethodResult, RunOptions, TerminalTable
from genlab.optimize.distill.recipe import DistillRecipe, distill_checkpoints

if TYPE_CHECKING:
    from genlab.optimize.distill.run import DistillResult


def _train(recipe: DistillRecipe, options: RunOptions) -> MethodResult:
    # trl/transformers/torch are imported when the method runs, not when the CLI starts (genlab.methods).
    from genlab.optimize.distill.run import distill

    result = distill(recipe, **options.keywords())
    return distill_method_result(result)


def distill_method_result(result: DistillResult) -> MethodResult:
    details = result.to_dict()
    numbers = {k: float(v) for k, v in result.details.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if result.report is not None:
        table = TerminalTable(*result.report.table())
        numbers |= {k: float(v) for k, v in result.report.metrics().items()}
    else:
        rows = [[key, f"{value:.4g}"] for key, value in numbers.items()] + [["saved to", result.folder]]
        table = TerminalTable(f"distilled student (run {result.run_id})", ["", "value"], rows)
    return MethodResult("distill", result.run_id, result.folder, "model", numbers, result.loss_history, table, details)


METHOD = Method(
    name="distill",
    group="optimize",
    recipe_schema=DistillRecipe,
    train=_train,
    help="Distil a teacher into a smaller student (KL x T^2 + alpha CE) and measure both.",
    data_fields=("data.path", "evaluation.data"),
    checkpoints=distill_checkpoints,
)
