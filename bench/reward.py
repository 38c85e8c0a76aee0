"""Benchmark: the shipped reward-model recipe on the default model, pairwise accuracy before and after.

Trains ``recipes/reward-model.yaml`` (LoRA on the last 4 blocks of SmolLM2-135M-Instruct plus a scalar
head, Bradley-Terry loss through trl's RewardTrainer, on the builtin summary preferences) and prints
held-out pairwise accuracy and mean margin before and after training, with the training time. Any
recipe value can be overridden as key=value. Takes about 4 minutes on 2 idle cores.

Measured here (2 cores): 40 held-out pairs from 10 unseen dialogues, accuracy 0.55 -> 0.85, margin
+0.029 -> +0.733.

    python bench/reward.py [key=value ...]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "reward-model.yaml"


def main(overrides: list[str]) -> None:
    os.environ.setdefault("GENLAB_HOME", tempfile.mkdtemp(prefix="genlab-bench-reward-"))
    from genlab.alignment.reward_model.training import RewardRecipe, train_reward_model
    from genlab.config import load_recipe
    from genlab.lineage import LineageStore

    recipe = load_recipe(RECIPE, RewardRecipe, overrides)
    result = train_reward_model(recipe, store=LineageStore(), recipe_dir=RECIPE.parent, progress=True)
    m = result.metrics
    print(f"reward model ({recipe.model}, {result.validation_pairs} held-out pairs, overrides: {overrides or 'none'})")
    print(f"  pairwise accuracy  {m['accuracy_before']:.3f} -> {m['accuracy_after']:.3f}  (chance 0.5)")
    print(f"  mean margin        {m['margin_before']:+.3f} -> {m['margin_after']:+.3f}")
    print(f"  training           {m['train_seconds']:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
