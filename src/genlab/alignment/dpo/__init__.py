"""Direct preference optimisation (``genlab align dpo``) through trl's DPOTrainer: :mod:`.training`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from genlab.alignment.dpo.recipe import DpoRecipe, dpo_checkpoints
from genlab.methods import Method, MethodResult, RunOptions, TerminalTable

if TYPE_CHECKING:
    from genlab.alignment.dpo.training import DpoResult


def dpo_method_result(result: DpoResult, *, method: str = "dpo") -> MethodResult:
    kind = "adapter" if result.output_kind == "adapter" else "model"
    return MethodResult(
        method, result.run_id, result.output_path, kind, result.metrics, result.loss_history,
        TerminalTable(*result.table()), result.to_dict(),
    )  # fmt: skip


def _train(recipe: DpoRecipe, options: RunOptions) -> MethodResult:
    # trl/transformers/torch are imported when the method runs, not when the CLI starts (genlab.methods).
    from genlab.alignment.dpo.training import run_dpo

    result = run_dpo(recipe, **options.keywords())
    return dpo_method_result(result)


METHOD = Method(
    name="dpo",
    group="align",
    recipe_schema=DpoRecipe,
    train=_train,
    help="Direct preference optimisation (trl) on chosen/rejected pairs.",
    data_fields=("data.path",),
    checkpoints=dpo_checkpoints,
)
