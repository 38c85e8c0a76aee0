"""GRPO, group relative policy optimisation (Shao et al. 2024, DeepSeekMath, arXiv:2402.03300), through trl.

For each prompt x the policy samples a group of G completions y_1..y_G, each scored by the recipe's
rewards (:mod:`genlab.alignment.rewards`), r_i = Σ_k w_k · r_k(x, y_i). The advantage of every
token of y_i is its reward relative to the group, with no value function:

    A_i = (r_i − mean(r_1..r_G)) / std(r_1..r_G)          (scale_rewards: group; "none" drops the division)

and the policy minimises the clipped surrogate with a KL penalty to the reference π_ref:

    L(θ) = −E_{i,t}[ min(ρ_{i,t} A_i, clip(ρ_{i,t}, 1 − ε, 1 + ε) A_i) − β · KL_{i,t} ],
    ρ_{i,t} = π_θ(y_{i,t} | x, y_{i,<t}) / π_old(y_{i,t} | x, y_{i,<t}),
    KL_{i,t} = π_ref/π_θ − log(π_ref/π_θ) − 1   (Schulman's k3 estimator, per token)

averaged over tokens as trl's ``loss_type`` says (``dapo``: all active tokens of the batch).
trl's GRPOTrainer computes all of it; genlab adds the recipe, the reward functions, the LoRA
adapter (the reference is the model with it switched off), the held-out before/after check that
PPO's lab reports, checkpoints and resume (:mod:`genlab.training`) and the lineage record.
"""

from __future__ import annotations

from genlab.alignment.grpo.recipe import GrpoRecipe
from genlab.methods import Method, MethodResult, RunOptions
from genlab.training.checkpoints import checkpoints_dir


def _train(recipe: GrpoRecipe, options: RunOptions) -> MethodResult:
    # trl/transformers/torch are imported when the method runs, not when the CLI starts (genlab.methods).
    from genlab.alignment.grpo.train import train_grpo

    return train_grpo(recipe, options)


METHOD = Method(
    name="grpo",
    group="align",
    recipe_schema=GrpoRecipe,
    train=_train,
    help="GRPO (trl): sampled groups of completions scored by genlab's rewards, a KL penalty to the reference.",
    data_fields=("data.path",),
    checkpoints=lambda recipe: checkpoints_dir("align", "grpo", recipe.name),  # as its run writes them
)
