"""`genlab align METHOD RECIPE [key=value ...]`: the align stage, one subcommand per registered method.

The subcommands come from the registry (:func:`genlab.registry.methods` of group ``align``): a new
method appears here when its folder is registered. Each loads its recipe (validated, with overrides),
runs the method into the lineage store and prints the result's table, or with ``--json`` one JSON
object (the method's own figures with ``method``, ``run_id``, ``output_path`` and ``output_kind``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from genlab.cli.output import console, print_json, print_table
from genlab.config import load_recipe
from genlab.lineage import LineageStore
from genlab.methods import Method
from genlab.registry import methods

app = typer.Typer(help="Align a model: reward models, PPO, DPO, Constitutional AI and more.", no_args_is_help=True)

RecipeArg = Annotated[Path, typer.Argument(help="A recipe YAML file (see recipes/).")]
OverridesArg = Annotated[list[str] | None, typer.Argument(help="key=value changes, e.g. ppo.steps=2.")]
ResumeFlag = Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint of this recipe.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def run_method(method: Method, recipe: Path, overrides: list[str] | None, resume: bool, as_json: bool) -> None:
    loaded = load_recipe(recipe, method.recipe_schema, overrides or [])
    with LineageStore() as store:
        result = method.run(loaded, store=store, recipe_dir=recipe.parent, resume=resume, progress=not as_json)
    if as_json:
        where = {"method": result.method, "run_id": result.run_id, "output_path": result.output_path, "output_kind": result.output_kind}
        print_json({**result.details, **where})
        return
    print_table(*result.table.as_tuple())
    console.print(f"recorded as run [bold]{result.run_id}[/]")


def _add_command(method: Method) -> None:
    def command(recipe: RecipeArg, overrides: OverridesArg = None, resume: ResumeFlag = False, as_json: JsonFlag = False) -> None:
        run_method(method, recipe, overrides, resume, as_json)

    command.__doc__ = method.help
    app.command(method.name)(command)


for _method in methods("align"):
    _add_command(_method)
