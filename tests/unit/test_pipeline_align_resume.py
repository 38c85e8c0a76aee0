"""The lifecycle's align step resumes inside training after a crash, as the adapt step does (issue 22).

A DPO candidate on a tiny model crashes mid-training (a Trainer callback handed to the lifecycle
raises after a checkpoint was written); rerunning the recipe resumes the step from that checkpoint
and ends with the same adapter weights as a run that never crashed. Checkpoints another setting left
are not resumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from genlab.alignment.dpo_data import PreferencePair, write_pairs
from genlab.lineage import LineageStore
from genlab.pipeline import LifecycleStepError, run_lifecycle
from genlab.pipeline.recipe import validate_lifecycle_recipe
from tests.unit.training_support import CrashAt

TOPICS = ["the weather", "my garden", "the meeting", "the bus", "dinner", "the report", "the rent", "lunch"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from genlab.models.tiny import save_tiny_model

    folder = tmp_path_factory.mktemp("align-resume")
    pairs = [PreferencePair(f"Can you help with {t}?", f"Happy to help with {t}.", f"No, {t} is not my problem.") for t in TOPICS]
    return save_tiny_model(folder / "tiny", "causal", seed=0), write_pairs(folder / "pairs.jsonl", pairs)


def recipe(world: tuple[Path, Path], name: str, *, beta: float = 0.1) -> Any:
    model, pairs = world
    raw = {
        "name": name,
        "scope": {"use_case": "a test", "metric": "rouge1", "target": 0.5},
        "data": {"path": "builtin", "held_out": 4, "limit": 12},
        "select": {"model": str(model)},
        "align": {"polite": {"method": "dpo", "beta": beta, "data": {"path": str(pairs), "validation_size": 2, "max_length": 64},
                             "lora": {"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": "all-linear"},
                             "training": {"max_steps": 4, "batch_size": 2, "learning_rate": 1e-2, "save_every": 2,
                                          "log_every": 1, "seed": 5}}},
    }  # fmt: skip
    return validate_lifecycle_recipe(raw, None)


def adapter_weights(result: Any) -> dict[str, torch.Tensor]:
    folder = Path(result.step("align.polite").state["outputs"]["output"]["path"])
    return load_file(str(folder / "adapter_model.safetensors"))


def test_a_crash_inside_align_training_resumes_there_and_ends_as_an_uninterrupted_run(world: tuple[Path, Path]) -> None:
    straight = run_lifecycle(recipe(world, "align-straight"), write_html=False)
    assert straight.step("align.polite").state["summary"]["resumed"] is False

    crashed = recipe(world, "align-crashed")
    with pytest.raises(LifecycleStepError, match="step align.polite failed .*simulated crash"):
        run_lifecycle(crashed, trainer_callbacks=[CrashAt(3)], write_html=False)
    resumed = run_lifecycle(crashed, write_html=False)
    step = resumed.step("align.polite").state
    assert step["summary"]["resumed"] is True
    with LineageStore() as store:
        dpo = store.get_run(step["sub_runs"]["dpo"])
        assert dpo.status == "completed" and dpo.config["resume_from"].endswith("checkpoint-2")

    expected, again = adapter_weights(straight), adapter_weights(resumed)
    assert expected.keys() == again.keys()
    for name in expected:
        torch.testing.assert_close(again[name], expected[name], rtol=0, atol=1e-6, msg=name)


def test_align_checkpoints_left_by_other_settings_are_not_resumed(world: tuple[Path, Path]) -> None:
    with pytest.raises(LifecycleStepError):
        run_lifecycle(recipe(world, "align-changed"), trainer_callbacks=[CrashAt(3)], write_html=False)
    changed = run_lifecycle(recipe(world, "align-changed", beta=0.3), write_html=False)
    step = changed.step("align.polite").state
    assert step["summary"]["resumed"] is False
    with LineageStore() as store:
        assert store.get_run(step["sub_runs"]["dpo"]).config["resume_from"] is None
