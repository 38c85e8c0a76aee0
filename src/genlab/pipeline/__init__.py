"""The whole lifecycle in one command: a recipe of stages, run in order, resumable, reported.

``genlab run RECIPE`` (:func:`run_lifecycle`) joins the library's stages -- scope, select, prompt,
adapt, align, evaluate, optimise, deploy -- into one pipeline with one lineage record; ``genlab
report RUN_ID`` (:func:`write_report`) draws its HTML report again from the lineage store.
"""

from genlab.pipeline.recipe import LifecycleRecipe, load_lifecycle_recipe
from genlab.pipeline.report import write_report
from genlab.pipeline.runner import LifecycleResult, LifecycleStepError, run_lifecycle

__all__ = [
    "LifecycleRecipe", "LifecycleResult", "LifecycleStepError", "load_lifecycle_recipe", "run_lifecycle", "write_report",
]
