"""Lifecycle recipes: every shipped one validates; bad values and keys fail in one sentence naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from genlab.config import RecipeError
from genlab.pipeline.recipe import BUILTIN_RECIPES, load_lifecycle_recipe, validate_lifecycle_recipe
from genlab.pipeline.stages import steps_for
from tests.conftest import PROJECT_ROOT


def shipped_lifecycle_recipes() -> list[Path]:
    """The builtin recipes and every recipe in recipes/ that declares a scope (the lifecycle's mark)."""
    found = list(BUILTIN_RECIPES.values())
    for path in sorted((PROJECT_ROOT / "recipes").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(raw, dict) and "scope" in raw:
            found.append(path)
    return found


def test_the_labs_and_the_demo_are_among_the_shipped_recipes() -> None:
    names = {path.stem for path in shipped_lifecycle_recipes()}
    assert {"lifecycle-demo", "lab1-prompting", "lab2-finetune", "lab3-detox"} <= names


@pytest.mark.parametrize("path", shipped_lifecycle_recipes(), ids=lambda p: p.stem)
def test_every_shipped_lifecycle_recipe_validates(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PROJECT_ROOT)  # the lab recipes name ../shared/... from the project's root
    recipe, _ = load_lifecycle_recipe(path)
    steps = [name for name, _ in steps_for(recipe)]
    assert steps[:2] == ["scope", "select"]
    for name in recipe.adapt:
        finetune = recipe.finetune_recipe(name)
        assert finetune.model == recipe.select.model and finetune.data.template == recipe.data.template
        assert finetune.evaluation.enabled is False  # evaluate scores every candidate on the same rows


def test_the_demo_has_every_stage_the_main_job_promises() -> None:
    recipe, _ = load_lifecycle_recipe("lifecycle-demo")
    assert [name for name, _ in steps_for(recipe)] == [
        "scope", "select", "prompt", "adapt.lora", "evaluate", "optimise", "deploy"
    ]  # fmt: skip
    assert recipe.select.model == "smollm2-135m-instruct" and recipe.data.path == "builtin"
    assert recipe.finetune_recipe("lora").method == "lora"
    assert recipe.optimise is not None and recipe.optimise.quantize.method == "int8-dynamic"


def test_lab2_candidates_take_their_settings_from_the_referenced_recipes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PROJECT_ROOT)
    recipe, _ = load_lifecycle_recipe("recipes/lab2-finetune.yaml")
    full, lora = recipe.finetune_recipe("full"), recipe.finetune_recipe("lora")
    referenced = yaml.safe_load((PROJECT_ROOT / "recipes" / "dialogsum-lora.yaml").read_text())
    assert (full.method, lora.method) == ("full", "lora")
    assert lora.lora.r == referenced["lora"]["r"] and lora.training.learning_rate == referenced["training"]["learning_rate"]
    assert lora.data.validation_size == 25  # the lifecycle's own setting lies over the referenced file's 100
    assert lora.name == "lab2-finetune-lora" and lora.data.path == "lifecycle:train"


def minimal(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"name": "t", "scope": {"metric": "rouge1"}, "evaluate": {"metrics": ["rouge"]},
                           "adapt": {"lora": {"method": "lora"}}, "optimise": {}, "deploy": {}}  # fmt: skip
    raw.update(changes)
    return raw


def write_recipe(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "life.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("adapt.lora.training.max_steps=-5", "adapt.lora: training.max_steps=-5 is not allowed"),
        ("adapt.lora.method=lorra", "adapt.lora: method='lorra' is not allowed"),
        ("prompt.shots=[0,-1]", "prompt.shots=[0, -1]"),
        ("data.held_out=0", "data.held_out=0 is not allowed"),
        ("select.dtype=fp7", "select.dtype='fp7' is not allowed"),
        ("optimise.candidate=nope", "optimise.candidate='nope' is not allowed"),
        ("scope.metric=bleu", "scope.metric='bleu' is not among the scores"),
        ("evaluate.metrics=[rouge,meteor]", "evaluate.metrics has 'meteor'"),
        ("align.x.method=rlhf", "align.x.method='rlhf' is not allowed"),
        ("prompt.shotz=1", "override key 'prompt.shotz' is not a lifecycle setting"),
        ("max_new_tokens=4", "override key 'max_new_tokens' is ambiguous"),
    ],
)
def test_a_bad_value_or_key_names_the_field(tmp_path: Path, override: str, named: str) -> None:
    path = write_recipe(tmp_path, minimal(prompt={}))
    with pytest.raises(RecipeError) as caught:
        load_lifecycle_recipe(path, [override])
    message = str(caught.value)
    assert named in message and "\n" not in message


def test_best_needs_an_evaluate_section_and_start_from_a_known_candidate() -> None:
    with pytest.raises(RecipeError, match="optimise.candidate='best' needs an evaluate section"):
        validate_lifecycle_recipe(minimal(evaluate=None, deploy={"candidate": "base"}), None)
    with pytest.raises(RecipeError, match=r"align.detox.start_from='lorra' is not allowed: give 'base' or an adapt"):
        validate_lifecycle_recipe(minimal(align={"detox": {"method": "ppo", "start_from": "lorra"}}), None)
    with pytest.raises(RecipeError, match="candidate name 'base' is not allowed"):
        validate_lifecycle_recipe(minimal(adapt={"base": {"method": "lora"}}), None)
    with pytest.raises(RecipeError, match="scope"):
        validate_lifecycle_recipe({"name": "t"}, None)


def test_overrides_set_sections_candidates_and_bare_keys(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, minimal(prompt={}))
    recipe, folder = load_lifecycle_recipe(
        path, ["held_out=8", "adapt.lora.training.max_steps=3", "optimise=null", "deploy.candidate=lora", "prompt.shots=[0, 2]"]
    )
    assert folder == tmp_path
    assert recipe.data.held_out == 8 and recipe.prompt is not None and recipe.prompt.shots == [0, 2]
    assert recipe.finetune_recipe("lora").training.max_steps == 3
    assert recipe.optimise is None and "optimise" not in [name for name, _ in steps_for(recipe)]
    assert recipe.deploy is not None and recipe.deploy.candidate == "lora"


def test_a_candidate_recipe_file_lies_under_the_candidates_own_settings(tmp_path: Path) -> None:
    (tmp_path / "tune.yaml").write_text(
        yaml.safe_dump({"name": "elsewhere", "model": "other-model", "method": "lora", "data": {"path": "x.jsonl", "template": "qa"},
                        "lora": {"r": 4, "alpha": 8}, "training": {"max_steps": 9, "batch_size": 2}}),
        encoding="utf-8",
    )  # fmt: skip
    raw = minimal(adapt={"small": {"recipe": "tune.yaml", "training": {"max_steps": 5}}})
    recipe, _ = load_lifecycle_recipe(write_recipe(tmp_path, raw))
    tuned = recipe.finetune_recipe("small")
    assert (tuned.lora.r, tuned.training.batch_size, tuned.training.max_steps) == (4, 2, 5)
    assert (tuned.name, tuned.model, tuned.data.template) == ("t-small", "smollm2-135m-instruct", "summarize")
    with pytest.raises(RecipeError, match=r"adapt.small.recipe='missing.yaml' is not a recipe file"):
        load_lifecycle_recipe(write_recipe(tmp_path, minimal(adapt={"small": {"recipe": "missing.yaml"}})))


def test_an_unknown_recipe_name_lists_the_builtin_ones() -> None:
    with pytest.raises(RecipeError, match="builtin lifecycle recipes: lifecycle-demo"):
        load_lifecycle_recipe("lifecycle-dem")
