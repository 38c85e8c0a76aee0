"""The lifecycle's evaluate stage on a tiny model: validation and test splits (a seeded part of the held-out
rows, scored once, labelled in the report) and an lm-eval task beside ROUGE."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genlab.errors import GenlabError
from genlab.pipeline import run_lifecycle
from genlab.pipeline.recipe import validate_lifecycle_recipe


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from genlab.models.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-causal"))


def test_validation_test_split_and_harness_in_the_evaluate_stage(tiny_folder: Path) -> None:
    recipe = validate_lifecycle_recipe({
        "name": "tiny-splits", "scope": {"metric": "rouge1"},
        "data": {"path": "builtin", "held_out": 6, "limit": 16, "test_size": 2},
        "select": {"model": str(tiny_folder)},
        "evaluate": {"metrics": ["rouge"], "max_new_tokens": 2, "harness": ["everyday-facts"], "harness_limit": 2},
    }, None)  # fmt: skip
    result = run_lifecycle(recipe)
    state = result.step("evaluate").state
    summary = state["summary"]
    assert summary["splits"] == {"validation": 4, "test": 2}
    base = summary["candidates"]["base"]
    assert base["split"] == "validation" and base["n"] == 4 and "everyday-facts/acc" in base["metrics"]
    test = summary["test"]["candidates"]["base"]
    assert test["n"] == 2 and "rouge1" in test["intervals"]
    # The test rows are held-out rows the validation never saw.
    folder = Path(state["outputs"]["comparison"]["path"]).parent
    validation = {json.loads(line)["id"] for line in (folder / "validation.jsonl").read_text().splitlines()}
    tested = {json.loads(line)["id"] for line in (folder / "test.jsonl").read_text().splitlines()}
    assert len(validation) == 4 and len(tested) == 2 and not validation & tested
    comparison = json.loads((folder / "comparison.json").read_text())
    assert comparison["split"] == "validation" and "everyday-facts/acc" in comparison["metrics"]
    report = Path(result.report).read_text()
    assert "Split: <b>validation</b> (4 rows)" in report and "Test split (2 rows, scored once, never used to choose)" in report


def test_recipe_refuses_two_test_splits_in_one_sentence() -> None:
    with pytest.raises(GenlabError, match="data.test and data.test_size"):
        validate_lifecycle_recipe({"name": "x", "scope": {}, "data": {"test": "t.jsonl", "test_size": 3}}, None)
    with pytest.raises(GenlabError, match="scope.metric"):
        validate_lifecycle_recipe({"name": "x", "scope": {"metric": "arc/acc"}, "evaluate": {"harness": ["everyday-facts"]}}, None)
