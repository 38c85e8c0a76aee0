"""`genlab finetune RECIPE [key=value ...]`: the adapt stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from genlab.cli.output import console, print_json, print_pairs

JSON_KEYS = ("run_id", "adapter_path", "trainable_params", "total_params", "trainable_percent", "metrics")


def finetune_command(
    recipe: Annotated[Path, typer.Argument(help="A recipe YAML file (see recipes/).")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value changes, e.g. max_steps=2 lora.r=16.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint of this recipe.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Fine-tune a model as a recipe says (full, LoRA, prompt tuning, selective, continued pre-training)."""
    from genlab.config import load_recipe
    from genlab.tuning.recipe import FinetuneRecipe
    from genlab.tuning.trainer import finetune

    loaded_recipe = load_recipe(recipe, FinetuneRecipe, overrides or [])
    result = finetune(loaded_recipe, resume=resume, recipe_dir=recipe.parent, progress=progress and not as_json)
    if not result.run_id:  # a non-main DDP rank: rank 0 reports
        return
    summary = result.to_dict()
    if as_json:
        print_json({key: summary[key] for key in JSON_KEYS} | {k: v for k, v in summary.items() if k not in JSON_KEYS and k != "loss_history"})
        return
    rows = [
        ("method", result.method),
        ("trainable parameters", f"{result.trainable_params:,} of {result.total_params:,} ({result.trainable_percent:.3f} %)"),
    ]
    rows += [(name, f"{value:.4g}") for name, value in result.metrics.items() if name not in ("trainable_params", "total_params", "trainable_percent")]
    print_pairs(f"fine-tuned {loaded_recipe.model} ({loaded_recipe.name})", rows)
    console.print(f"output: {result.adapter_path}\nreport: {result.report}\nrecorded as run [bold]{result.run_id}[/]")
    if result.baseline_run_id and result.eval_run_id:
        console.print(f"compare: genlab compare {result.baseline_run_id} {result.eval_run_id}")
