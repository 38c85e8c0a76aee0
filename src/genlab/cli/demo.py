"""`genlab demo`: the main job -- the builtin lifecycle recipe on the default model and data."""

from __future__ import annotations

from typing import Annotated

import typer


def demo_command(
    overrides: Annotated[
        list[str] | None, typer.Argument(help="key=value changes to the demo recipe, e.g. adapt.lora.training.epochs=1.")
    ] = None,
    model: Annotated[str, typer.Option(help="Model to run the demo on.")] = "smollm2-135m-instruct",
    force: Annotated[bool, typer.Option("--force", help="Run every step again, even those that could be reused.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show step progress and training bars.")] = True,
) -> None:
    """Select, prompt baseline, LoRA, evaluation, int8 optimisation and a serve config; prints the table and the report."""
    from genlab.cli.run import print_lifecycle, run_with_progress
    from genlab.demo import DEMO_RECIPE, load_demo_recipe

    recipe, recipe_dir = load_demo_recipe(model, overrides or [])
    result = run_with_progress(
        recipe, recipe_dir, source=DEMO_RECIPE, overrides=[f"select.model={model}", *(overrides or [])], force=force,
        progress=progress,
    )  # fmt: skip
    print_lifecycle(result)
