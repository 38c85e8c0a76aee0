"""Constitutional AI (``genlab align constitutional``): critique -> revision -> AI preference labels -> DPO.

The pipeline is :mod:`.pipeline`; its parts are :mod:`genlab.alignment.constitution` (principles),
:mod:`genlab.alignment.critique_revision` and :mod:`genlab.alignment.rlaif`. With its DPO stage on it
leaves a DPO adapter (or model); with it off, the datasets it wrote (AI preference pairs, else the
supervised revisions).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from genlab.alignment.constitutional.recipe import ConstitutionalRecipe
from genlab.alignment.dpo.recipe import dpo_checkpoints
from genlab.methods import Method, MethodResult, RunOptions, TerminalTable

if TYPE_CHECKING:
    from genlab.alignment.constitutional.pipeline import ConstitutionalResult


def _train(recipe: ConstitutionalRecipe, options: RunOptions) -> MethodResult:
    # trl/transformers/torch are imported when the method runs, not when the CLI starts (genlab.methods).
    from genlab.alignment.constitutional.pipeline import run_constitutional

    result = run_constitutional(recipe, **options.keywords())
    return constitutional_method_result(result)


def constitutional_method_result(result: ConstitutionalResult) -> MethodResult:
    table = TerminalTable(*result.table())
    if result.dpo is not None:
        dpo = result.dpo
        kind = "adapter" if dpo.output_kind == "adapter" else "model"
        return MethodResult("constitutional", result.run_id, dpo.output_path, kind, dpo.metrics, dpo.loss_history, table, result.to_dict())
    dataset = result.pairs_file or result.sft_dataset or ""
    metrics = {"prompts": float(result.prompts), "revisions": float(result.revisions), "pairs": float(result.pairs)}
    return MethodResult("constitutional", result.run_id, dataset, "dataset", metrics, [], table, result.to_dict())


METHOD = Method(
    name="constitutional",
    group="align",
    recipe_schema=ConstitutionalRecipe,
    train=_train,
    help="Constitutional AI: critique and revise red-team answers (SFT data), AI preference labels (DPO pairs).",
    data_fields=("prompts", "constitution"),
    checkpoints=lambda recipe: dpo_checkpoints(recipe.dpo_recipe(Path())),  # its DPO stage's, the one that trains
)
