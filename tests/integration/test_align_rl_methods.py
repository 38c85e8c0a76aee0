"""GRPO, RLOO, KTO and ORPO end to end on the default model with tiny budgets (2 steps each), through the registry."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from safetensors.torch import load_file

from genlab.config import load_recipe
from genlab.lineage import LineageStore
from genlab.registry import get_method
from tests.conftest import PROJECT_ROOT, run_cli

pytestmark = pytest.mark.integration

RECIPES = PROJECT_ROOT / "recipes"
SAMPLED = ["training.steps=2", "training.prompts_per_step=1", "training.generations=2", "training.max_new_tokens=8",
           "data.limit=6", "data.validation_size=1", "evaluation.max_new_tokens=8"]  # fmt: skip
PREFERENCE = ["training.max_steps=2", "training.batch_size=2", "data.limit=6", "data.validation_size=2"]


def _lora_b_changed(adapter: Path) -> bool:
    """A fresh LoRA adapter starts with B = 0: any non-zero B means the method trained it."""
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    return any(float(t.abs().max()) > 0 for name, t in weights.items() if "lora_B" in name)


def test_grpo_through_the_cli_on_the_default_model(genlab_home: Path) -> None:
    done = run_cli("align", "grpo", str(RECIPES / "grpo.yaml"), *SAMPLED, "--json", timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["method"] == "grpo" and result["output_kind"] == "adapter"
    assert _lora_b_changed(Path(result["output_path"]))
    before, after = result["before"], result["after"]
    assert before["kl"] == 0.0 and after["kl"] >= 0.0
    assert 0.0 <= after["toxicity_mean"] <= 1.0 and 0.0 <= after["rouge1"] <= 1.0
    with LineageStore() as store:
        run = store.get_run(result["run_id"])
        assert run.kind == "grpo" and run.status == "completed"
        assert [step for step, _ in store.metric_history(run.id, "train_loss")] == [1, 2]
        assert all(0.0 <= reward <= 1.0 for _, reward in store.metric_history(run.id, "reward"))  # 1 - P(toxic)


@pytest.mark.parametrize(
    ("name", "recipe", "overrides"),
    [("rloo", "rloo.yaml", SAMPLED), ("kto", "kto.yaml", PREFERENCE), ("orpo", "orpo.yaml", PREFERENCE)],
)
def test_method_on_the_default_model(name: str, recipe: str, overrides: list[str], genlab_home: Path) -> None:
    method = get_method(name, "align")
    loaded = load_recipe(RECIPES / recipe, method.recipe_schema, overrides)
    with LineageStore() as store:
        result = method.run(loaded, store=store, recipe_dir=RECIPES, progress=False)
        assert store.get_run(result.run_id).status == "completed"
    losses = [entry["loss"] for entry in result.loss_history if "loss" in entry]
    assert len(losses) == 2 and not any(math.isnan(loss) for loss in losses)  # logged, not NaN
    assert _lora_b_changed(Path(result.output_path))
    assert result.table.rows and result.table.title
