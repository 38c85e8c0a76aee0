"""The shipped reward-model recipe on the real default model (SmolLM2-135M-Instruct), on a smaller budget.

Three steps of 4 pairs (the recipe: 8 of 8) and 3 held-out dialogues keep this near a minute; the full
recipe's figures (accuracy 0.55 -> 0.85 on 40 pairs) come from ``python bench/reward.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from genlab.alignment.reward import TrainedRewardModel, load_reward
from genlab.lineage import LineageStore
from genlab.alignment.reward_data import RUDE_PHRASES, summary_prompt
from genlab.alignment.reward_model.training import RewardRecipe, train_reward_model
from genlab.config import load_recipe
from genlab.data.builtin import builtin_dialogues

pytestmark = pytest.mark.integration
RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "reward-model.yaml"


def test_shipped_recipe_learns_summary_preferences_and_serves_as_a_reward() -> None:
    recipe = load_recipe(RECIPE, RewardRecipe, ["training.max_steps=3", "training.batch_size=4", "data.validation_size=3"])
    result = train_reward_model(recipe, store=LineageStore(), recipe_dir=RECIPE.parent, progress=False)
    m = result.metrics
    print(  # shown with -s
        f"\nreward-model: accuracy {m['accuracy_before']:.3f} -> {m['accuracy_after']:.3f}, "
        f"margin {m['margin_before']:+.3f} -> {m['margin_after']:+.3f}, {m['train_seconds']:.0f} s training"
    )
    assert result.validation_pairs == 12  # 4 pairs for each of 3 unseen dialogues
    assert m["accuracy_after"] >= m["accuracy_before"] and m["margin_after"] > m["margin_before"]

    reward = load_reward("reward-model")
    assert isinstance(reward, TrainedRewardModel)
    row = builtin_dialogues()[0]
    rude = f"{row['summary']} {RUDE_PHRASES[0]}"
    # as genlab's PPO passes it: the prompt already in the chat template, with the generation cue
    chat_prompt = reward.tokenizer.apply_chat_template(
        [{"role": "user", "content": summary_prompt(row["dialogue"])}], tokenize=False, add_generation_prompt=True
    )
    raw = reward([summary_prompt(row["dialogue"])] * 2, [row["summary"], rude])
    formatted = reward([chat_prompt] * 2, [row["summary"], rude])
    assert formatted == pytest.approx(raw, abs=1e-4)  # not wrapped in the template twice
