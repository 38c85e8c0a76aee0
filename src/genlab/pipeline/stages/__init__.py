"""The lifecycle's stages, one module each, behind one small interface (:mod:`genlab.pipeline.step`).

A stage says which settings decide its output (``settings``), which files it reads (``inputs``,
content-hashed into the cache key and recorded in lineage) and does its work (``run``) by calling the
library (genlab.prompting, genlab.tuning, genlab.alignment, genlab.evaluation, genlab.optimize). The
runner (:mod:`genlab.pipeline.runner`) records each as a lineage run and skips it when nothing it
depends on changed.

:func:`steps_for` turns a recipe into its ordered steps: ``scope``, ``select``, ``prompt``, one
``adapt.NAME`` per adapt candidate, one ``align.NAME`` per align candidate, ``evaluate``,
``optimise``, ``deploy`` -- the optional ones only when the recipe has them.
"""

from __future__ import annotations

from genlab.pipeline.recipe import LifecycleRecipe
from genlab.pipeline.stages.adapt import AdaptStage
from genlab.pipeline.stages.align import AlignStage
from genlab.pipeline.stages.deploy import DeployStage
from genlab.pipeline.stages.evaluate import EvaluateStage
from genlab.pipeline.stages.optimise import OptimiseStage
from genlab.pipeline.stages.prompt import PromptStage
from genlab.pipeline.stages.scope import ScopeStage
from genlab.pipeline.stages.select import SelectStage
from genlab.pipeline.step import Stage


def steps_for(recipe: LifecycleRecipe) -> list[tuple[str, Stage]]:
    """The recipe's steps in order, each with the stage that runs it."""
    steps: list[tuple[str, Stage]] = [("scope", ScopeStage()), ("select", SelectStage())]
    if recipe.prompt is not None:
        steps.append(("prompt", PromptStage()))
    steps += [(f"adapt.{name}", AdaptStage(name)) for name in recipe.adapt]
    steps += [(f"align.{name}", AlignStage(name)) for name in recipe.align]
    if recipe.evaluate is not None:
        steps.append(("evaluate", EvaluateStage()))
    if recipe.optimise is not None:
        steps.append(("optimise", OptimiseStage()))
    if recipe.deploy is not None:
        steps.append(("deploy", DeployStage()))
    return steps
