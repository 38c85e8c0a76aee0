"""`genlab align ppo|dpo|reward|constitutional RECIPE [key=value ...]`: the align stage.

Each subcommand loads its recipe (validated, with overrides), calls the library and prints the
result's table, or with ``--json`` one JSON object (``result.to_dict()``).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any

import typer

from genlab.cli.output import console, print_json, print_table

app = typer.Typer(help="Align a model: reward models, PPO, DPO, Constitutional AI.", no_args_is_help=True)

RecipeArg = Annotated[Path, typer.Argument(help="A recipe YAML file (see recipes/).")]
OverridesArg = Annotated[list[str] | None, typer.Argument(help="key=value changes, e.g. ppo.steps=2.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]

# subcommand -> (module, recipe class, function(recipe, recipe_dir=...) -> result)
STAGES = {
    "reward": ("genlab.alignment.reward_training", "RewardRecipe", "train_reward_model"),
    "ppo": ("genlab.alignment.ppo_run", "PpoRecipe", "run_ppo"),
    "dpo": ("genlab.alignment.dpo", "DpoRecipe", "run_dpo"),
    "constitutional": ("genlab.alignment.constitutional", "ConstitutionalRecipe", "run_constitutional"),
}


def _run(stage: str, recipe: Path, overrides: list[str] | None, as_json: bool) -> None:
    from genlab.config import load_recipe

    module_name, recipe_class, function = STAGES[stage]
    module = importlib.import_module(module_name)
    loaded = load_recipe(recipe, getattr(module, recipe_class), overrides or [])
    result: Any = getattr(module, function)(loaded, recipe_dir=recipe.parent)
    if as_json:
        print_json(result.to_dict())
        return
    title, columns, rows = result.table()
    print_table(title, columns, rows)
    console.print(f"recorded as run [bold]{result.run_id}[/]")


@app.command("reward")
def reward_command(recipe: RecipeArg, overrides: OverridesArg = None, as_json: JsonFlag = False) -> None:
    """Train a reward model on preference pairs (Bradley-Terry) and report held-out pairwise accuracy."""
    _run("reward", recipe, overrides, as_json)


@app.command("ppo")
def ppo_command(recipe: RecipeArg, overrides: OverridesArg = None, as_json: JsonFlag = False) -> None:
    """PPO against a reward with a KL penalty to a frozen reference; a before/after table."""
    _run("ppo", recipe, overrides, as_json)


@app.command("dpo")
def dpo_command(recipe: RecipeArg, overrides: OverridesArg = None, as_json: JsonFlag = False) -> None:
    """Direct preference optimisation (trl) on chosen/rejected pairs."""
    _run("dpo", recipe, overrides, as_json)


@app.command("constitutional")
def constitutional_command(recipe: RecipeArg, overrides: OverridesArg = None, as_json: JsonFlag = False) -> None:
    """Constitutional AI: critique and revise red-team answers (SFT data), AI preference labels (DPO pairs)."""
    _run("constitutional", recipe, overrides, as_json)
