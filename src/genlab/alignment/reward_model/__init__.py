"""A reward model trained on preference pairs (``genlab align reward``): Bradley-Terry through trl's
RewardTrainer, :mod:`.training`. Scoring with it is :class:`genlab.alignment.reward.TrainedRewardModel`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genlab.alignment.reward_model.recipe import RewardRecipe, reward_checkpoints
from genlab.methods import Method, MethodResult, RunOptions, TerminalTable

if TYPE_CHECKING:
    from genlab.alignment.reward_model.training import RewardResult


def _train(recipe: RewardRecipe, options: RunOptions) -> MethodResult:
    # trl/transformers/torch are imported when the method runs, not when the CLI starts (genlab.methods).
    from genlab.alignment.reward_model.training import train_reward_model

    result = train_reward_model(recipe, **options.keywords())
    return reward_method_result(result)


def reward_method_result(result: RewardResult) -> MethodResult:
    table = TerminalTable(*result.table())
    return MethodResult("reward", result.run_id, result.model_path, "model", result.metrics, result.loss_history, table, result.to_dict())


METHOD = Method(
    name="reward",
    group="align",
    recipe_schema=RewardRecipe,
    train=_train,
    help="Train a reward model on preference pairs (Bradley-Terry) and report held-out pairwise accuracy.",
    data_fields=("data.path",),
    checkpoints=reward_checkpoints,
    generates_text=False,  # a scalar head: it scores answers, it writes none
)
