"""Recipe schema, YAML loading and key=value overrides; every shipped recipe validates."""

import subprocess
import sys
from pathlib import Path

import pytest

from genlab.config import RecipeError, apply_overrides, load_recipe, parse_override
from genlab.registry import get_method, method_names
from genlab.tuning.recipe import FinetuneRecipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.mark.parametrize("path", sorted(RECIPES.glob("dialogsum-*.yaml")), ids=lambda p: p.name)
def test_every_shipped_finetune_recipe_validates(path: Path) -> None:
    recipe = load_recipe(path, FinetuneRecipe)
    assert recipe.name == path.stem
    assert recipe.data.validation_size >= 1


def test_the_three_lab_recipes_are_shipped() -> None:
    names = {p.stem for p in RECIPES.glob("dialogsum-*.yaml")}
    assert {"dialogsum-full", "dialogsum-lora", "dialogsum-prompt-tuning"} <= names


def test_lora_recipe_is_the_measured_configuration() -> None:
    recipe = load_recipe(RECIPES / "dialogsum-lora.yaml", FinetuneRecipe)
    assert (recipe.method, recipe.lora.r, recipe.lora.target_modules) == ("lora", 16, "all-linear")
    assert (recipe.training.batch_size, recipe.training.learning_rate, recipe.training.epochs) == (4, 5e-4, 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("max_steps=2", ("max_steps", 2)), ("training.learning_rate=5e-4", ("training.learning_rate", 5e-4)),
     ("lora.target_modules=[q_proj, v_proj]", ("lora.target_modules", ["q_proj", "v_proj"])),
     ("data.chat=false", ("data.chat", False)), ("name=my-run", ("name", "my-run"))],
)  # fmt: skip
def test_override_values_are_parsed_as_yaml_scalars(text: str, expected: tuple) -> None:
    assert parse_override(text) == expected


def test_bare_keys_resolve_to_their_only_section() -> None:
    raw = {"name": "x", "data": {"path": "builtin"}}
    changed = apply_overrides(raw, ["max_steps=2", "r=4", "data.limit=10"], FinetuneRecipe)
    assert changed["training"]["max_steps"] == 2 and changed["lora"]["r"] == 4 and changed["data"]["limit"] == 10
    assert raw == {"name": "x", "data": {"path": "builtin"}}  # the original is untouched


@pytest.mark.parametrize(
    ("override", "message"),
    [("nonsense=1", "not a recipe setting"), ("limit=2", "ambiguous"), ("max_steps", "not key=value")],
)
def test_bad_overrides_are_one_sentence(override: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        apply_overrides({"name": "x", "data": {"path": "builtin"}}, [override], FinetuneRecipe)


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("name: x\ndata: {path: builtin}\ntraining: {learning_rate: -1}\n", "training.learning_rate=-1 is not allowed"),
        ("name: x\ndata: {path: builtin}\nlora: {rank: 8}\n", "lora.rank"),
        ("name: x\n", "data"),
        ("- just\n- a list\n", "must hold a mapping"),
        ("name: [unclosed\n", "not valid YAML"),
        ("name: x\ndata: {path: builtin}\ntraining: {early_stopping_patience: 2, eval_every: 10, save_every: 15}\n",
         "save_every must be a multiple of eval_every"),
    ],
)  # fmt: skip
def test_bad_recipes_are_one_sentence_naming_the_field(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml_text)
    with pytest.raises(RecipeError, match=message) as caught:
        load_recipe(path, FinetuneRecipe)
    assert "\n" not in str(caught.value)


def test_method_may_be_spelled_with_a_hyphen() -> None:
    recipe = FinetuneRecipe.model_validate({"name": "x", "data": {"path": "builtin"}, "method": "prompt-tuning"})
    assert recipe.method == "prompt_tuning" and get_method(recipe.method, "adapt").name == "prompt_tuning"


def test_an_unknown_method_is_one_sentence_listing_the_registered_ones(tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text("name: x\ndata: {path: builtin}\nmethod: magic\n")
    result = subprocess.run([sys.executable, "-m", "genlab", "finetune", str(path)], capture_output=True, text=True, timeout=120)
    message = result.stderr.strip()
    assert result.returncode == 2 and "\n" not in message
    assert "unknown adapt method 'magic'" in message and all(name in message for name in method_names("adapt"))


@pytest.mark.parametrize(
    ("name", "kind"), [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("deepspeed-zero3", "DEEPSPEED")]
)
def test_shipped_accelerate_configs_load_with_accelerate(name: str, kind: str) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(RECIPES / "accelerate" / f"{name}.yaml"))  # unknown keys raise
    assert config.distributed_type.value == kind
    assert config.num_processes >= 2 and not config.use_cpu
