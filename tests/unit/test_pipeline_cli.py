"""`genlab run` as a user runs it: a failing step or a bad override is one line and a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from genlab.models.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-resume"))


def write_recipe(folder: Path, model: Path, **changes: object) -> Path:
    raw = {
        "name": "killed",
        "scope": {"metric": "rouge1"},
        "data": {"path": "builtin", "held_out": 4, "limit": 40},
        "select": {"model": str(model)},
        "adapt": {"lora": {"method": "lora", "lora": {"r": 4, "alpha": 8}, "data": {"validation_size": 2},
                           "training": {"max_steps": 60, "batch_size": 2, "learning_rate": 1e-2, "eval_every": 30,
                                        "save_every": 2, "log_every": 1}}},
        "evaluate": {"metrics": ["rouge"], "max_new_tokens": 4, "limit": 2},
        "deploy": {"candidate": "lora"},
        **changes,
    }  # fmt: skip
    path = folder / "killed.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_a_failing_step_is_one_line_and_a_nonzero_exit(tiny_folder: Path, tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, tiny_folder, data={"path": str(tmp_path / "nowhere.jsonl")})
    done = run_cli("run", str(recipe), "--no-progress")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: step scope failed") and "nowhere.jsonl" in lines[-1]
    assert "Traceback" not in done.stderr
    assert any(line.startswith("report: ") for line in lines[:-1])  # the failed run still has its report


def test_a_bad_override_fails_before_anything_runs(tmp_path: Path, tiny_folder: Path) -> None:
    recipe = write_recipe(tmp_path, tiny_folder)
    done = run_cli("run", str(recipe), "adapt.lora.training.max_steps=-1x")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "adapt.lora: training.max_steps='-1x' is not allowed" in done.stderr
