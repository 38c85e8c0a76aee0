"""KTO, Kahneman–Tversky optimisation (Ethayarajh et al. 2024, arXiv:2402.01306), through trl's KTOTrainer.

KTO learns from single answers marked desirable (D) or undesirable (U) rather than from pairs; genlab
makes them from its preference pairs or rankings (:mod:`genlab.alignment.kto.data`). With the implicit
reward r_θ(x, y) = log π_θ(y|x) / π_ref(y|x) and a reference point z_0 = KL(π_θ(y'|x) || π_ref(y'|x))
estimated from mismatched prompt–answer pairs in the batch (not back-propagated):

    v(x, y) = λ_D · σ(β · (r_θ(x, y) − z_0))   if y is desirable
              λ_U · σ(β · (z_0 − r_θ(x, y)))   if y is undesirable
    L(θ) = E_{x,y}[ λ_y − v(x, y) ]

β (default 0.1) sets how far π_θ may move from π_ref, λ_D and λ_U weigh the two kinds. The reference
is the starting model: the LoRA adapter switched off. The run (held-out pairs before/after, adapter,
checkpoints, lineage) is :mod:`genlab.alignment.kto.preference_run`, shared with ORPO.
"""

from __future__ import annotations

from genlab.alignment.kto.recipe import KtoRecipe
from genlab.methods import Method, MethodResult, RunOptions
from genlab.training.checkpoints import checkpoints_dir


def _train(recipe: KtoRecipe, options: RunOptions) -> MethodResult:
    # trl/transformers/torch are imported when the method runs, not when the CLI starts (genlab.methods).
    from genlab.alignment.kto.train import train_kto

    return train_kto(recipe, options)


METHOD = Method(
    name="kto",
    group="align",
    recipe_schema=KtoRecipe,
    train=_train,
    help="KTO (trl): desirable / undesirable answers made from genlab's preference pairs or rankings.",
    data_fields=("data.path",),
    checkpoints=lambda recipe: checkpoints_dir("align", "kto", recipe.name),  # as its run writes them
)
