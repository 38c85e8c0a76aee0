"""Magnitude pruning (``genlab optimize prune``), a one-shot transform: :mod:`.run` prunes, recovers, saves and
measures; :mod:`.unstructured` zeroes weights, :mod:`.structured` removes neurons or heads, :mod:`.recover` is the
optional LoRA recovery fine-tune; the recipe is :mod:`.recipe`.
"""

from __future__ import annotations

from genlab.methods import Method, MethodResult, RunOptions
from genlab.optimize.prune.recipe import PruneRecipe


def _train(recipe: PruneRecipe, options: RunOptions) -> MethodResult:
    # torch/transformers/peft are imported when the method runs, not when the CLI starts (genlab.methods).
    from genlab.optimize.prune.run import prune

    return prune(recipe, store=options.store, progress=options.progress).method_result("prune")


METHOD = Method(
    name="prune",
    group="optimize",
    recipe_schema=PruneRecipe,
    train=_train,
    help="Prune a model by weight magnitude (unstructured, MLP neurons or attention heads) and measure it against the original.",
    data_fields=("evaluation.data", "prune.recover_data"),
)
