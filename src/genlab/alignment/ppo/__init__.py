"""PPO with a KL penalty (``genlab align ppo``), the third lab: :mod:`.algorithm` (hand-written PPO with a
value head and a frozen reference; trl removed its PPOTrainer) and :mod:`.lab` (the before/after run).
Rollouts are :mod:`genlab.alignment.ppo_rollout`, shared with GRPO's held-out measurement.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genlab.alignment.ppo.recipe import PpoRecipe, ppo_checkpoints
from genlab.methods import Method, MethodResult, RunOptions, TerminalTable

if TYPE_CHECKING:
    from genlab.alignment.ppo.lab import PpoResult


def _train(recipe: PpoRecipe, options: RunOptions) -> MethodResult:
    # torch and transformers are imported when the method runs, not when the CLI starts (genlab.methods).
    from genlab.alignment.ppo.lab import run_ppo

    result = run_ppo(recipe, **options.keywords())
    return ppo_method_result(result)


def ppo_method_result(result: PpoResult) -> MethodResult:
    metrics = {**{f"before_{k}": v for k, v in result.before.items()}, **{f"after_{k}": v for k, v in result.after.items()}}
    metrics |= {"relative_toxicity_change": result.relative_toxicity_change, "rouge1_change_points": result.rouge1_change_points}
    metrics["seconds"] = result.seconds
    history = [{**step, "step": float(step["step"]), "loss": step["policy_loss"]} for step in result.steps]  # loss: the clipped policy loss
    return MethodResult(
        "ppo", result.run_id, result.adapter_path, "adapter", metrics, history, TerminalTable(*result.table()), result.to_dict()
    )


METHOD = Method(
    name="ppo",
    group="align",
    recipe_schema=PpoRecipe,
    train=_train,
    help="PPO against a reward with a KL penalty to a frozen reference; a before/after table.",
    data_fields=("data.path",),
    checkpoints=ppo_checkpoints,
)
