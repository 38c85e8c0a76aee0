"""DPO through trl on a tiny random causal model: held-out preferences move, the adapter is the policy, lineage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from genlab.alignment.dpo.training import DpoRecipe, DpoResult, run_dpo
from genlab.alignment.dpo_data import (
    PairLogProbs,
    PairsError,
    PreferencePair,
    fitting_pairs,
    pair_logprobs,
    preference_metrics,
    read_pairs,
    split_pairs,
    write_pairs,
)  # fmt: skip
from genlab.config import load_recipe
from genlab.errors import InvalidValueError
from genlab.lineage import LineageStore
from genlab.models.adapters import merge_adapter, read_adapter_info
from genlab.models.load import load_model
from tests.conftest import run_cli

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
TOPICS = [
    "the weather", "my garden", "the meeting", "the bus", "dinner", "the report", "the holiday", "my phone",
    "the rent", "the train", "lunch", "the party", "the exam", "the bill", "the car", "the office",
    "the order", "the flight", "the doctor", "the bank", "the movie", "the kitchen", "the shop", "the plan",
]  # fmt: skip


def separable_pairs() -> list[PreferencePair]:
    """Chosen answers all thank and offer help; rejected ones all brush the person off: one direction to learn."""
    return [
        PreferencePair(
            f"Can you help me with {topic}?",
            f"Thank you for asking, I am happy to help with {topic}.",
            f"No. Go away, {topic} is not my problem.",
        )
        for topic in TOPICS
    ]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from genlab.models.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-causal"), "causal", seed=0)


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    return write_pairs(tmp_path / "pairs.jsonl", separable_pairs())


def recipe(model: Path, pairs: Path, **changes: Any) -> DpoRecipe:
    base: dict[str, Any] = {
        "name": "tiny-dpo",
        "model": str(model),
        "data": {"path": str(pairs), "validation_size": 8, "split_seed": 0, "max_length": 128},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"},
        "beta": 0.1,
        "training": {"max_steps": 12, "batch_size": 4, "learning_rate": 2e-2, "log_every": 1, "seed": 3},
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            base.setdefault(section, {})[field] = value
        else:
            base[key] = value
    return DpoRecipe.model_validate(base)


@pytest.fixture
def trained(tiny_folder: Path, pairs_file: Path) -> DpoResult:
    return run_dpo(recipe(tiny_folder, pairs_file), store=LineageStore(), progress=False)


# --- the measurement ---------------------------------------------------------------------------------


def test_preference_metrics_match_hand_computed_values() -> None:
    # Pair 1: rewards 0.1*(-1+2) = 0.1 and 0.1*(-3+2) = -0.1 -> margin 0.2, right.
    # Pair 2: policy == reference -> both rewards 0, a tie counted as half. Log-likelihoods: -1 > -3 (right,
    # margin 2) and -5 < -4 (wrong, margin -1).
    policy = PairLogProbs(chosen=(-1.0, -5.0), rejected=(-3.0, -4.0))
    reference = PairLogProbs(chosen=(-2.0, -5.0), rejected=(-2.0, -4.0))
    metrics = preference_metrics(policy, reference, beta=0.1)
    assert metrics["reward_accuracy"] == pytest.approx(0.75)
    assert metrics["reward_margin"] == pytest.approx(0.1)
    assert metrics["loglik_accuracy"] == pytest.approx(0.5)
    assert metrics["loglik_margin"] == pytest.approx(0.5)


def test_dpo_raises_held_out_preference_accuracy_and_margin(trained: DpoResult) -> None:
    before, after = trained.before, trained.after
    assert trained.held_out_pairs == 8 and trained.train_pairs == 16 and trained.dropped_pairs == 0
    # Before training the policy is the reference: every implicit reward is 0, a tie on every pair.
    assert before["reward_accuracy"] == 0.5 and before["reward_margin"] == 0.0
    assert after["reward_accuracy"] >= 0.875  # at least 7 of the 8 held-out pairs
    assert after["reward_margin"] > 0.05
    assert after["loglik_margin"] > before["loglik_margin"] + 0.5
    assert trained.metrics["steps"] == 12
    assert [entry["step"] for entry in trained.loss_history if "loss" in entry][:2] == [1.0, 2.0]
    assert trained.metrics["last_loss"] < trained.metrics["first_loss"]


def test_the_saved_adapter_is_the_trained_policy(trained: DpoResult, tiny_folder: Path, pairs_file: Path) -> None:
    folder = Path(trained.output_path)
    assert folder.parent.name == "adapters" and folder.name == "tiny-dpo"
    info = read_adapter_info(folder)
    assert info.method == "dpo" and info.peft_type == "LORA" and info.run_id == trained.run_id
    assert info.base_fingerprint is not None and info.base_fingerprint.startswith("sha256:")
    lora_b = [t for name, t in load_file(str(folder / "adapter_model.safetensors")).items() if "lora_B" in name]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)  # peft initialises B at zero: every one trained

    # Reloaded onto the base, the adapter scores the held-out pairs exactly as the trained policy did.
    base = load_model(str(tiny_folder))
    held_out = read_pairs(held_out_file(trained.run_id))
    merged = merge_adapter(base, folder)
    reference = pair_logprobs(base, held_out, chat=True)
    again = preference_metrics(pair_logprobs(merged, held_out, chat=True), reference, beta=0.1)
    for key, value in trained.after.items():
        assert again[key] == pytest.approx(value, abs=1e-4)


def held_out_file(run_id: str) -> str:
    with LineageStore() as store:
        outputs = store.artifacts_of(run_id, "output")
    return next(a.path for a in outputs if a.kind == "dataset" and a.metadata.get("role") == "validation")


def test_a_second_run_gets_a_fresh_adapter_folder(trained: DpoResult, tiny_folder: Path, pairs_file: Path) -> None:
    again = run_dpo(recipe(tiny_folder, pairs_file, training__max_steps=1), store=LineageStore(), progress=False)
    assert Path(again.output_path).name == "tiny-dpo-2"
    assert (Path(trained.output_path) / "adapter_config.json").is_file()  # the first is untouched


def test_a_starting_adapter_is_merged_first(trained: DpoResult, tiny_folder: Path, pairs_file: Path) -> None:
    again = run_dpo(recipe(tiny_folder, pairs_file, name="second", adapter=trained.output_path, training__max_steps=1),
                    store=LineageStore(), progress=False)  # fmt: skip
    # Same pairs and split seed, so the same held-out pairs: the new run starts where the first one ended.
    assert again.before["loglik_margin"] == pytest.approx(trained.after["loglik_margin"], abs=1e-4)
    with LineageStore() as store:
        inputs = store.artifacts_of(again.run_id, "input")
    assert any(a.kind == "adapter" and Path(a.path) == Path(trained.output_path).resolve() for a in inputs)


def test_lineage_records_pairs_in_adapter_out_and_per_step_losses(trained: DpoResult, pairs_file: Path) -> None:
    with LineageStore() as store:
        run = store.get_run(trained.run_id)
        inputs = store.artifacts_of(run.id, "input")
        outputs = store.artifacts_of(run.id, "output")
        losses = store.metric_history(run.id, "train_loss")
        metrics = store.metrics(run.id)
    assert run.kind == "dpo" and run.status == "completed"
    assert run.config["recipe"]["beta"] == 0.1
    assert any(a.kind == "dataset" and Path(a.path).resolve() == pairs_file.resolve() for a in inputs)
    assert any(a.kind == "model" for a in inputs)
    assert [a.kind for a in outputs if a.kind == "adapter"] == ["adapter"]
    assert [step for step, _ in losses] == list(range(1, 13))
    assert metrics["after_reward_accuracy"] == trained.after["reward_accuracy"]
    assert metrics["before_reward_accuracy"] == 0.5


def test_full_weight_dpo_trains_against_a_frozen_copy(tiny_folder: Path, pairs_file: Path) -> None:
    result = run_dpo(recipe(tiny_folder, pairs_file, lora__enabled=False, training__learning_rate=1e-3), store=LineageStore(), progress=False)
    folder = Path(result.output_path)
    assert folder.parent.name == "finetuned"
    assert result.after["reward_accuracy"] >= 0.875 and result.after["reward_margin"] > 0
    trained, base = load_model(str(folder)), load_model(str(tiny_folder))
    changed = [
        not torch.equal(a, b) for a, b in zip(trained.model.parameters(), base.model.parameters(), strict=True)
    ]
    assert all(changed)  # every weight trained (the reference was a copy, not these weights)
    assert json.loads((folder / "genlab_model.json").read_text())["method"] == "dpo"


# --- data --------------------------------------------------------------------------------------------


def test_pairs_file_problems_are_one_sentence_naming_the_line(tmp_path: Path) -> None:
    cases = {
        '{"prompt": "p", "chosen": "a"}\n': "line 1 has no 'rejected' field",
        '{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p", "chosen": "x", "rejected": "x"}\n':
            "line 2 has the same text",
        '{"prompt": "p", "chosen": "", "rejected": "b"}\n': "empty or non-text 'chosen'",
        "not json\n": "line 1 is not valid JSON",
    }  # fmt: skip
    for index, (text, expected) in enumerate(cases.items()):
        path = tmp_path / f"bad-{index}.jsonl"
        path.write_text(text)
        with pytest.raises(PairsError) as caught:
            read_pairs(path)
        assert expected in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(PairsError, match="no such pairs file"):
        read_pairs(tmp_path / "missing.jsonl")


def test_split_is_seeded_disjoint_and_refuses_to_hold_out_everything() -> None:
    pairs = separable_pairs()
    train, held = split_pairs(pairs, 0.25, seed=1)
    assert len(held) == 6 and len(train) == 18 and not set(held) & set(train)
    assert split_pairs(pairs, 0.25, seed=1) == (train, held)
    assert split_pairs(pairs, 0, seed=1) == (pairs, [])
    with pytest.raises(InvalidValueError, match="leaves none to train on"):
        split_pairs(pairs, 24, seed=1)


def test_pairs_longer_than_max_length_are_dropped_whole(tiny_folder: Path) -> None:
    loaded = load_model(str(tiny_folder))
    long = PreferencePair("Tell me a story.", "Once upon a time " * 60, "No.")
    kept, dropped = fitting_pairs(loaded, [*separable_pairs()[:3], long], max_length=96, chat=True)
    assert kept == separable_pairs()[:3] and dropped == [long]


def test_the_shipped_recipe_and_its_pairs_validate() -> None:
    loaded = load_recipe(RECIPES / "dpo.yaml", DpoRecipe)
    assert loaded.model == "smollm2-135m-instruct" and loaded.lora.enabled and loaded.beta == 0.1
    pairs = read_pairs(RECIPES / loaded.data.path)
    assert len(pairs) == 40 and len({p.prompt for p in pairs}) == 40


# --- the command line ----------------------------------------------------------------------------------


def test_cli_runs_dpo_with_overrides_and_prints_json(tiny_folder: Path, pairs_file: Path, tmp_path: Path) -> None:
    recipe_file = tmp_path / "dpo.yaml"
    recipe_file.write_text(f"name: cli-dpo\ndata:\n  path: {pairs_file.name}\n  validation_size: 4\n")
    # The pairs file sits beside the recipe: a relative path is read from the recipe's folder.
    result = run_cli(
        "align", "dpo", str(recipe_file), f"model={tiny_folder}", "training.max_steps=2", "batch_size=2",
        "lora.target_modules=all-linear", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {
        "run_id", "output_path", "before", "after", "train_pairs", "held_out_pairs", "dropped_pairs", "metrics",
        "loss_history", "method", "output_kind",
    }  # fmt: skip
    assert (out["method"], out["output_kind"]) == ("dpo", "adapter")
    assert out["held_out_pairs"] == 4 and out["train_pairs"] == 20 and out["metrics"]["steps"] == 2
    assert set(out["after"]) == {"reward_accuracy", "reward_margin", "loglik_accuracy", "loglik_margin"}
    assert Path(out["output_path"]).name == "cli-dpo"


def test_cli_reports_a_bad_pairs_file_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "pairs.jsonl").write_text('{"prompt": "p", "chosen": "a"}\n')
    recipe_file = tmp_path / "dpo.yaml"
    recipe_file.write_text("name: bad\ndata:\n  path: pairs.jsonl\n")
    result = run_cli("align", "dpo", str(recipe_file))
    assert result.returncode == 2
    assert "has no 'rejected' field" in result.stderr and len(result.stderr.strip().splitlines()) == 1
