"""`genlab optimize distill --model TEACHER [--student-layers N | --student MODEL] --data TRAIN ...`.

Options fill a :class:`genlab.optimize.distill.run.DistillRecipe` (over ``--recipe FILE`` when given, and
before ``key=value`` overrides), so the recipe schema is the one place settings are checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from genlab.cli.optimize_options import JsonFlag, OutputOption
from genlab.cli.output import print_json, print_table
from genlab.config import apply_overrides, read_recipe_file, set_setting, validate_recipe
from genlab.lineage import LineageStore
from genlab.registry import get_method

Opt = typer.Option


def distill_command(
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value recipe changes, e.g. loss.alpha=1.0.")] = None,
    model: Annotated[str | None, Opt("--model", "-m", help="The teacher (name, folder or hub id).")] = None,
    student_layers: Annotated[int | None, Opt("--student-layers", help="Layers the student keeps (default: half).")] = None,
    student: Annotated[str | None, Opt("--student", help="A smaller model sharing the teacher's tokenizer.")] = None,
    data: Annotated[str | None, Opt("--data", help="Training data: a file, builtin set or hub id.")] = None,
    eval_data: Annotated[str | None, Opt("--eval-data", help="Data to measure on (default: rows held out of --data).")] = None,
    validation_size: Annotated[float | None, Opt("--held-out", help="Rows (or a fraction) of --data held out.")] = None,
    limit: Annotated[int | None, Opt("--limit", help="Read only the first N rows of --data.")] = None,
    metric: Annotated[str | None, Opt("--metric", help="rouge1 (summaries) or perplexity (of the targets).")] = None,
    eval_limit: Annotated[int | None, Opt("--eval-limit", help="Examples to score.")] = None,
    input_field: Annotated[str | None, Opt("--input-field", help="The input column.")] = None,
    target_field: Annotated[str | None, Opt("--target-field", help="The target column.")] = None,
    steps: Annotated[int | None, Opt("--steps", help="Training steps (overrides --epochs).")] = None,
    epochs: Annotated[float | None, Opt("--epochs", help="Passes over the training rows.")] = None,
    batch_size: Annotated[int | None, Opt("--batch-size", help="Rows per step.")] = None,
    learning_rate: Annotated[float | None, Opt("--learning-rate", help="Peak learning rate.")] = None,
    temperature: Annotated[float | None, Opt("--temperature", help="Softening temperature T.")] = None,
    alpha: Annotated[float | None, Opt("--alpha", help="Weight of the ground-truth cross-entropy.")] = None,
    name: Annotated[str | None, Opt("--name", help="Run name (checkpoints and default output folder).")] = None,
    output: OutputOption = None,
    recipe: Annotated[Path | None, Opt("--recipe", help="A distillation recipe YAML (see recipes/distill.yaml).")] = None,
    resume: Annotated[bool, Opt("--resume", help="Continue from the last checkpoint of this run name.")] = False,
    progress: Annotated[bool, Opt("--progress/--no-progress", help="Show a progress bar.")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Distil a teacher into a smaller student (KL x T^2 + alpha CE) and measure both."""
    method = get_method("distill", "optimize")
    raw: dict[str, Any] = read_recipe_file(recipe) if recipe is not None else {}
    given = {
        "teacher": model, "student.layers": student_layers, "student.model": student, "data.path": data,
        "evaluation.data": eval_data, "data.validation_size": validation_size, "data.limit": limit,
        "evaluation.metric": metric, "evaluation.limit": eval_limit, "data.input_field": input_field,
        "data.target_field": target_field, "training.max_steps": steps, "training.epochs": epochs,
        "training.batch_size": batch_size, "training.learning_rate": learning_rate, "loss.temperature": temperature,
        "loss.alpha": alpha, "name": name, "output": output,
    }  # fmt: skip
    for path, value in given.items():
        if value is not None:  # set as typed by the option, not re-read as YAML
            set_setting(raw, path, value)
    raw = apply_overrides(raw, overrides or [], method.recipe_schema)
    settings = validate_recipe(raw, method.recipe_schema, where="distill settings")
    with LineageStore() as store:
        result = method.run(
            settings, store=store, resume=resume, recipe_dir=recipe.parent if recipe else None, progress=progress and not as_json
        )
    if as_json:
        print_json(result.details)
        return
    print_table(*result.table.as_tuple())
