"""RLOO, REINFORCE with a leave-one-out baseline (Ahmadian et al. 2024, arXiv:2402.14740; Kool et al. 2019), through trl.

For each prompt x the policy samples G completions; each reward (the recipe's, Σ_k w_k · r_k) is
first reduced by the sequence's KL from the reference, r_i ← r_i − β · KL(π_θ || π_ref)(y_i), and
the baseline of a completion is the mean reward of the *other* G − 1 in its group:

    A_i = r_i − (1 / (G − 1)) · Σ_{j ≠ i} r_j

so no value function is learnt (unlike PPO) and the baseline does not include the completion itself
(unlike GRPO's group mean). trl's RLOOTrainer optimises the clipped surrogate of PPO with these
advantages (ε, ``iterations`` updates per batch). The prompts, rewards, LoRA adapter, held-out
check, checkpoints and lineage are GRPO's (:mod:`genlab.alignment.grpo.sampled_run`).
"""

from __future__ import annotations

from genlab.alignment.rloo.recipe import RlooRecipe
from genlab.methods import Method, MethodResult, RunOptions
from genlab.training.checkpoints import checkpoints_dir


def _train(recipe: RlooRecipe, options: RunOptions) -> MethodResult:
    # trl/transformers/torch are imported when the method runs, not when the CLI starts (genlab.methods).
    from genlab.alignment.rloo.train import train_rloo

    return train_rloo(recipe, options)


METHOD = Method(
    name="rloo",
    group="align",
    recipe_schema=RlooRecipe,
    train=_train,
    help="RLOO (trl): REINFORCE with a leave-one-out baseline over sampled completions scored by genlab's rewards.",
    data_fields=("data.path",),
    checkpoints=lambda recipe: checkpoints_dir("align", "rloo", recipe.name),  # as its run writes them
)
