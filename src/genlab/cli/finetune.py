"""`genlab finetune RECIPE [key=value ...]`: the adapt stage, through the method registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from genlab.cli.output import console, print_json, print_table
from genlab.config import load_recipe
from genlab.lineage import LineageStore
from genlab.registry import get_method
from genlab.tuning.recipe import FinetuneRecipe


def finetune_command(
    recipe: Annotated[Path, typer.Argument(help="A recipe YAML file (see recipes/).")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value changes, e.g. max_steps=2 lora.r=16.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint of this recipe.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Fine-tune a model as a recipe says (full, LoRA, prompt tuning, selective, continued pre-training)."""
    loaded_recipe = load_recipe(recipe, FinetuneRecipe, overrides or [])
    method = get_method(loaded_recipe.method, "adapt")
    with LineageStore() as store:
        result = method.run(loaded_recipe, store=store, resume=resume, recipe_dir=recipe.parent, progress=progress and not as_json)
    if not result.run_id:  # a non-main DDP rank: rank 0 reports
        return
    if as_json:
        print_json({**result.details, "metrics": result.metrics, "output_path": result.output_path, "output_kind": result.output_kind})
        return
    print_table(*result.table.as_tuple())
    console.print(f"recorded as run [bold]{result.run_id}[/]")
    baseline, tuned = result.details.get("baseline_run_id"), result.details.get("eval_run_id")
    if baseline and tuned:
        console.print(f"compare: genlab compare {baseline} {tuned}")
