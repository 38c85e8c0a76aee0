"""The adapt stage on the default model and real DialogSum data: the LoRA recipe, shortened to a smoke run."""

import json
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, run_cli

pytestmark = pytest.mark.integration


def test_lora_recipe_trains_records_and_its_adapter_evaluates_the_same(dialogsum_dev: Path, genlab_home: Path) -> None:
    recipe = PROJECT_ROOT / "recipes" / "dialogsum-lora.yaml"
    trained = run_cli(
        "finetune", str(recipe), f"data.path={dialogsum_dev}", "max_steps=2", "training.batch_size=2", "data.limit=30", "validation_size=3",
        "evaluation.limit=3", "evaluation.max_new_tokens=24", "evaluation.baseline=false", "--json",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    result = json.loads(trained.stdout)
    assert set(result) >= {"run_id", "adapter_path", "trainable_params", "total_params", "trainable_percent", "metrics"}
    assert result["total_params"] > 134_000_000 and 0 < result["trainable_percent"] < 5
    assert result["metrics"]["steps"] == 2
    adapter = Path(result["adapter_path"])
    assert (adapter / "adapter_model.safetensors").is_file() and adapter.parent == genlab_home / "adapters"

    validation = genlab_home / "runs" / result["run_id"] / "validation.jsonl"
    evaluated = run_cli(
        "eval", "--adapter", adapter.name, "--data", str(validation), "--limit", "3", "--max-new-tokens", "24", "--json"
    )
    assert evaluated.returncode == 0, evaluated.stderr
    # The adapter reloaded from disk scores what the trainer's own evaluation scored: nothing lost in saving.
    assert json.loads(evaluated.stdout)["metrics"]["rouge1"] == pytest.approx(result["metrics"]["val_rouge1"])
