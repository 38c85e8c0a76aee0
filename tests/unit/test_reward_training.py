"""Reward-model training on a tiny random causal LM: accuracy before/after, the saved model, lineage, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from genlab.alignment.reward import TrainedRewardModel, load_reward
from genlab.alignment.reward_data import PreferencePair, write_pairs
from genlab.alignment.reward_model.training import RewardRecipe, train_reward_model
from genlab.config import RecipeError, load_recipe
from genlab.data.builtin import builtin_dialogues
from genlab.errors import InvalidValueError
from genlab.lineage import LineageStore
from tests.conftest import run_cli

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
INSULTS = ("You stupid idiot, shut up.", "What a pathetic loser.", "Go away, moron.", "This is crap, idiot.")


@pytest.fixture(scope="module")
def tiny_causal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from genlab.models.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-causal") / "model", "causal", seed=0)


@pytest.fixture(scope="module")
def separable_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Per dialogue: its real summary (chosen) against an insult (rejected). Separable by the words alone."""
    pairs = [
        PreferencePair(f"Summarize the talk about {row['topic']}.", row["summary"], INSULTS[i % len(INSULTS)])
        for i, row in enumerate(builtin_dialogues())
    ]
    return write_pairs(pairs, tmp_path_factory.mktemp("pairs") / "separable.jsonl")


def recipe(model: Path, data: Path, **changes: Any) -> RewardRecipe:
    base: dict[str, Any] = {
        "name": "tiny-rm",
        "model": str(model),
        "data": {"path": str(data), "validation_size": 16, "split_seed": 0, "formatting": "plain"},
        "lora": {"r": 8, "alpha": 16},
        "training": {"epochs": 4, "batch_size": 8, "learning_rate": 2e-2, "log_every": 1, "seed": 0},
    }
    for key, value in changes.items():
        section, _, name = key.partition("__")
        base.setdefault(section, {})[name] = value
    return RewardRecipe.model_validate(base)


@pytest.fixture(scope="module")
def trained(tiny_causal: Path, separable_pairs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One LoRA training run shared by the checks below (its own GENLAB_HOME, kept for the module)."""
    home = tmp_path_factory.mktemp("reward-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENLAB_HOME", str(home))
        result = train_reward_model(recipe(tiny_causal, separable_pairs), store=LineageStore(), progress=False)
    return {"result": result, "home": home}


def test_training_lifts_held_out_accuracy_and_margin(trained: dict[str, Any]) -> None:
    result = trained["result"]
    m = result.metrics
    assert result.validation_pairs == 16 and result.train_pairs == 48 and result.dropped_pairs == 0
    assert m["accuracy_after"] >= m["accuracy_before"]
    assert m["accuracy_after"] >= 0.8  # held-out prompts the model never saw; chance is 0.5
    assert m["margin_after"] > m["margin_before"] + 0.5
    losses = [entry["loss"] for entry in result.loss_history]
    assert len(losses) >= 4 and sum(losses[-2:]) / 2 < sum(losses[:2]) / 2  # -log σ(Δ) went down
    assert 0 < m["trainable_params"] < m["total_params"]  # LoRA: the base stayed frozen
    title, columns, rows = result.table()
    assert columns == ["metric", "before", "after"] and rows[0][0] == "pairwise accuracy"
    assert rows[0][2] == f"{m['accuracy_after']:.3f}"


def test_saved_model_loads_as_a_reward_and_reproduces_the_reported_accuracy(trained: dict[str, Any]) -> None:
    result, home = trained["result"], trained["home"]
    folder = Path(result.model_path)
    assert folder.parent == home / "reward_models" and folder.name == "tiny-rm"
    assert not any(p.name.startswith((".tmp-", ".old-")) for p in folder.parent.iterdir())
    record = json.loads((folder / "genlab_reward.json").read_text())
    assert record["base_fingerprint"].startswith("sha256:") and record["formatting"]["style"] == "plain"
    assert record["accuracy_after"] == result.metrics["accuracy_after"] and record["run_id"] == result.run_id
    assert not (folder / "adapter_config.json").exists()  # LoRA merged into a standalone model

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENLAB_HOME", str(home))
        reward = load_reward("tiny-rm")  # by name, under $GENLAB_HOME/reward_models
    assert isinstance(reward, TrainedRewardModel)
    validation = [json.loads(line) for line in (home / "runs" / result.run_id / "validation_pairs.jsonl").read_text().splitlines()]
    prompts = [row["prompt"] for row in validation]
    chosen = reward(prompts, [row["chosen"] for row in validation])
    rejected = reward(prompts, [row["rejected"] for row in validation])
    margins = [c - r for c, r in zip(chosen, rejected)]
    assert sum(m > 0 for m in margins) / len(margins) == result.metrics["accuracy_after"]
    assert sum(margins) / len(margins) == pytest.approx(result.metrics["margin_after"], abs=1e-4)


def test_the_run_is_recorded_in_lineage(trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    result = trained["result"]
    monkeypatch.setenv("GENLAB_HOME", str(trained["home"]))
    with LineageStore() as store:
        run = store.get_run(result.run_id)
        assert (run.kind, run.status) == ("reward", "completed")
        inputs = {a.kind for a in store.artifacts_of(result.run_id, "input")}
        outputs = store.artifacts_of(result.run_id, "output")
        assert {"dataset", "model"} <= inputs
        assert any(a.kind == "reward_model" and a.path.endswith("tiny-rm") for a in outputs)
        metrics = store.metrics(result.run_id)
        assert metrics["accuracy_before"] == result.metrics["accuracy_before"]
        assert metrics["accuracy_after"] == result.metrics["accuracy_after"]
        assert store.metric_history(result.run_id, "train_loss")


def test_full_training_and_chat_formatting(tiny_causal: Path, separable_pairs: Path) -> None:
    result = train_reward_model(
        recipe(tiny_causal, separable_pairs, lora__enabled=False, data__formatting="chat", training__max_steps=3),
        store=LineageStore(), progress=False,
    )
    assert result.metrics["trainable_params"] == result.metrics["total_params"]
    assert result.metrics["steps"] == 3
    assert json.loads((Path(result.model_path) / "genlab_reward.json").read_text())["formatting"]["style"] == "chat"


def test_user_errors_are_one_sentence(tiny_causal: Path, separable_pairs: Path) -> None:
    with pytest.raises(InvalidValueError, match="holds out 64 of 64 prompts"):
        train_reward_model(recipe(tiny_causal, separable_pairs, data__validation_size=64), store=LineageStore(), progress=False)
    with pytest.raises(InvalidValueError, match="drops every"):
        train_reward_model(recipe(tiny_causal, separable_pairs, data__max_length=8), store=LineageStore(), progress=False)
    with pytest.raises(InvalidValueError, match="lora.last_layers=5 is not allowed: the model has 2 layers"):
        train_reward_model(recipe(tiny_causal, separable_pairs, lora__last_layers=5), store=LineageStore(), progress=False)


def test_shipped_recipe_validates() -> None:
    loaded = load_recipe(RECIPES / "reward-model.yaml", RewardRecipe)
    assert loaded.name == "reward-model" and loaded.model == "smollm2-135m-instruct"
    assert loaded.data.path == "builtin:summary-preferences" and loaded.lora.enabled
    with pytest.raises(RecipeError, match="lora.r=0 is not allowed"):
        load_recipe(RECIPES / "reward-model.yaml", RewardRecipe, ["lora.r=0"])


def test_cli_trains_with_overrides_and_prints_json(tiny_causal: Path, separable_pairs: Path, genlab_home: Path) -> None:
    done = run_cli(
        "align", "reward", str(RECIPES / "reward-model.yaml"), f"model={tiny_causal}", f"data.path={separable_pairs}",
        "validation_size=8", "max_steps=2", "batch_size=4", "last_layers=1", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert {"run_id", "name", "model_path", "metrics", "per_kind", "train_pairs", "validation_pairs", "loss_history"} <= set(out)
    assert {"accuracy_before", "accuracy_after", "margin_before", "margin_after", "train_seconds"} <= set(out["metrics"])
    assert out["metrics"]["steps"] == 2 and out["validation_pairs"] == 8
    assert Path(out["model_path"]).parent == genlab_home / "reward_models"


def test_cli_user_error_exits_2_with_one_line(tmp_path: Path) -> None:
    done = run_cli("align", "reward", str(RECIPES / "reward-model.yaml"), f"data.path={tmp_path / 'none.jsonl'}")
    assert done.returncode == 2
    assert "no such preference file" in done.stderr and "Traceback" not in done.stderr


def test_reward_head_sits_on_the_bases_own_weights() -> None:
    import torch

    from genlab.alignment.reward_model.training import build_reward_model
    from genlab.models.tiny import tiny_model

    causal = tiny_model("causal", seed=3)
    model = build_reward_model(causal, seed=0)
    assert model.config.num_labels == 1 and model.config.pad_token_id == causal.tokenizer.pad_token_id
    base = causal.model.base_model.state_dict()
    assert all(torch.equal(tensor, base[name]) for name, tensor in model.base_model.state_dict().items())
    again = build_reward_model(causal, seed=0)
    assert torch.equal(model.score.weight, again.score.weight)  # the head's initialisation is seeded
    with pytest.raises(InvalidValueError, match="encoder-decoder"):
        build_reward_model(tiny_model("seq2seq"), seed=0)


def test_last_layers_adapts_only_the_top_blocks_and_trains_the_head() -> None:
    from peft import get_peft_model

    from genlab.alignment.reward_model.training import (
        RewardLoraConfig,
        _peft_config,
        build_reward_model,
    )
    from genlab.models.tiny import tiny_model

    model = build_reward_model(tiny_model("causal"), seed=0)
    peft_model = get_peft_model(model, _peft_config(model, RewardLoraConfig(r=4, last_layers=1)))
    trainable = [name for name, p in peft_model.named_parameters() if p.requires_grad]
    lora = [name for name in trainable if "lora_" in name]
    assert lora and all(".layers.1." in name for name in lora)  # the tiny model has layers 0 and 1
    assert {"q_proj", "o_proj", "gate_proj", "down_proj"} <= {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in lora}
    assert any("score" in name and "lora_" not in name for name in trainable)  # the head is trained in full
