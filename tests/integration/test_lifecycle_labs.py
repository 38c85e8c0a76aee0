"""The three lab recipes run on DialogSum's dev split with the default model, each shrunk by overrides.

The full recipes take from minutes (lab 1) to about an hour (lab 2); these runs keep every stage and
setting of the recipe but a handful of rows and steps, so the recipes cannot rot.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from genlab.pipeline import load_lifecycle_recipe, run_lifecycle
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.integration


def run_lab(name: str, *overrides: str) -> dict:
    recipe, recipe_dir = load_lifecycle_recipe(PROJECT_ROOT / "recipes" / f"{name}.yaml", overrides)
    result = run_lifecycle(recipe, recipe_dir=recipe_dir, write_html=False)
    assert result.status == "completed"
    assert all(step.status == "ran" for step in result.steps)
    return {step.step: step.state for step in result.steps}


@pytest.fixture(autouse=True)
def from_the_project_root(dialogsum_dev: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PROJECT_ROOT)  # the recipes name ../shared/datasets/... from there


def test_lab1_compares_zero_one_and_two_shots() -> None:
    states = run_lab("lab1-prompting", "prompt.limit=2", "prompt.max_new_tokens=8")
    assert states["scope"]["summary"]["rows"] == 500 and states["scope"]["summary"]["held_out_rows"] == 50
    results = states["prompt"]["summary"]["results"]
    assert [r["shots"] for r in results] == [0, 1, 2]
    assert results[0]["mean_prompt_tokens"] < results[1]["mean_prompt_tokens"] < results[2]["mean_prompt_tokens"]
    assert all(0.0 <= r["rouge1"] <= 1.0 for r in results)


def test_lab2_trains_full_and_lora_and_compares_them_with_the_base() -> None:
    states = run_lab(
        "lab2-finetune", "data.limit=40", "data.held_out=4", "adapt.full.training.max_steps=1",
        "adapt.lora.training.max_steps=1", "adapt.full.data.validation_size=2", "adapt.lora.data.validation_size=2",
        "adapt.full.training.batch_size=2", "adapt.lora.training.batch_size=2", "evaluate.limit=2",
        "evaluate.max_new_tokens=8",
    )  # fmt: skip
    full, lora = states["adapt.full"]["summary"], states["adapt.lora"]["summary"]
    assert (full["method"], lora["method"]) == ("full", "lora")
    assert full["trainable_params"] == full["total_params"] and lora["trainable_params"] < lora["total_params"] / 10
    assert set(states["evaluate"]["summary"]["candidates"]) == {"base", "full", "lora"}


def test_lab3_aligns_with_ppo_against_the_toxicity_reward() -> None:
    states = run_lab(
        "lab3-detox", "data.limit=40", "data.held_out=4", "align.detox.ppo.steps=1", "align.detox.ppo.batch_size=2",
        "align.detox.ppo.mini_batch_size=2", "align.detox.ppo.max_new_tokens=8", "align.detox.evaluation.limit=2",
        "align.detox.evaluation.max_new_tokens=8", "align.detox.data.validation_size=2", "evaluate.limit=2",
        "evaluate.max_new_tokens=8",
    )  # fmt: skip
    align = states["align.detox"]["summary"]
    assert align["method"] == "ppo" and align["result"]["steps"][0]["reward_mean"] > 0
    evaluate = states["evaluate"]["summary"]
    assert evaluate["metric"] == "toxicity_mean" and set(evaluate["candidates"]) == {"base", "detox"}
    assert all("toxicity_mean" in c["metrics"] and "rouge1" in c["metrics"] for c in evaluate["candidates"].values())
