"""ORPO, odds-ratio preference optimisation (Hong et al. 2024, arXiv:2403.07691), through trl's ORPOTrainer.

ORPO needs no reference model: it adds to the supervised loss on the chosen answer a term that
raises the odds of the chosen answer over the rejected one,

    odds_θ(y|x) = P_θ(y|x) / (1 − P_θ(y|x)),   P_θ(y|x) = exp((1/|y|) Σ_t log π_θ(y_t | x, y_<t))
    L(θ) = E[ −log P_θ(y_w|x) ] + λ · E[ −log σ( log odds_θ(y_w|x) − log odds_θ(y_l|x) ) ]

with λ the recipe's ``beta`` (default 0.1, the paper's). trl's ORPOTrainer computes the loss (in
``trl.experimental`` in trl 1.16); the data, LoRA adapter, held-out before/after check, checkpoints
and lineage are genlab's preference run (:mod:`genlab.alignment.kto.preference_run`), shared with KTO.
The held-out implicit-reward row compares with the starting model, which ORPO itself never reads.
"""

from __future__ import annotations

from genlab.alignment.orpo.recipe import OrpoRecipe
from genlab.methods import Method, MethodResult, RunOptions
from genlab.training.checkpoints import checkpoints_dir


def _train(recipe: OrpoRecipe, options: RunOptions) -> MethodResult:
    # trl/transformers/torch are imported when the method runs, not when the CLI starts (genlab.methods).
    from genlab.alignment.orpo.train import train_orpo

    return train_orpo(recipe, options)


METHOD = Method(
    name="orpo",
    group="align",
    recipe_schema=OrpoRecipe,
    train=_train,
    help="ORPO (trl): supervised loss on the chosen answer plus an odds-ratio preference term, no reference model.",
    data_fields=("data.path",),
    checkpoints=lambda recipe: checkpoints_dir("align", "orpo", recipe.name),  # as its run writes them
)
