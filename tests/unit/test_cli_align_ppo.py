"""`genlab align ppo RECIPE key=value ...` as a user runs it, on a tiny model folder: JSON, adapter, lineage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genlab.config import load_recipe
from genlab.lineage import LineageStore
from genlab.models.tiny import save_tiny_model
from tests.conftest import PROJECT_ROOT, run_cli

RECIPE = PROJECT_ROOT / "recipes" / "detox-ppo.yaml"
QUICK = [
    "data.path=builtin", "data.limit=12", "data.validation_size=4", "ppo.steps=2", "ppo.batch_size=2",
    "ppo.mini_batch_size=1", "ppo.ppo_epochs=1", "ppo.max_new_tokens=6", "evaluation.max_new_tokens=6",
    "lora.r=2", "lora.alpha=4",
]  # fmt: skip


def home(folder: Path) -> dict[str, str]:
    return {"GENLAB_HOME": str(folder)}


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-ppo") / "model", seed=4)


def test_shipped_detox_recipe_validates() -> None:
    from genlab.alignment.ppo.lab import PpoRecipe

    recipe = load_recipe(RECIPE, PpoRecipe)
    assert recipe.reward == "non-toxicity" and recipe.ppo.kl_coef > 0


def test_align_ppo_json_adapter_and_lineage(tiny_folder: Path, genlab_home: Path) -> None:
    result = run_cli("align", "ppo", str(RECIPE), f"model={tiny_folder}", *QUICK, "--json", env=home(genlab_home))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    keys = {"run_id", "adapter_path", "before", "after", "relative_toxicity_change", "rouge1_change_points", "steps"}
    assert keys <= set(report)
    for side in ("before", "after"):
        assert set(report[side]) == {"toxicity_mean", "toxicity_std", "rouge1", "kl"}
        assert 0 <= report[side]["toxicity_mean"] <= 1 and 0 <= report[side]["rouge1"] <= 1
    assert report["before"]["kl"] == 0 and report["after"]["kl"] >= -1e-5  # a KL estimate: float noise around 0
    before, after = report["before"]["toxicity_mean"], report["after"]["toxicity_mean"]
    expected = 100 * (after - before) / before
    assert report["relative_toxicity_change"] == pytest.approx(expected)
    assert [s["step"] for s in report["steps"]] == [1, 2]
    adapter = Path(report["adapter_path"])
    record = json.loads((adapter / "genlab_adapter.json").read_text())
    assert record["method"] == "ppo" and record["run_id"] == report["run_id"]
    assert (adapter / "adapter_model.safetensors").is_file()

    with LineageStore() as store:
        run = store.get_run(report["run_id"])
        assert run.kind == "ppo" and run.status == "completed"
        assert run.config["recipe"]["ppo"]["steps"] == 2
        assert {a.kind for a in store.artifacts_of(run.id, "input")} >= {"model", "dataset"}
        assert {a.kind for a in store.artifacts_of(run.id, "output")} >= {"adapter", "predictions"}
        assert [step for step, _ in store.metric_history(run.id, "reward")] == [1, 2]
        assert [step for step, _ in store.metric_history(run.id, "kl")] == [1, 2]
        assert store.metrics(run.id)["after_rouge1"] == pytest.approx(report["after"]["rouge1"])


def test_bad_minibatch_override_is_one_sentence_and_exit_2(tiny_folder: Path) -> None:
    result = run_cli("align", "ppo", str(RECIPE), f"model={tiny_folder}", "ppo.batch_size=4", "ppo.mini_batch_size=3")
    assert result.returncode == 2
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert "mini_batch_size=3" in message and "batch_size=4" in message
