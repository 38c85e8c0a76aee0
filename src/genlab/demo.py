"""The main job: the builtin lifecycle recipe on the default model and the builtin data.

``genlab demo`` runs ``lifecycle-demo`` (``genlab/pipeline/recipes/lifecycle-demo.yaml``): select
the model with its memory estimates, a zero/one-shot prompt baseline, a LoRA adaptation, evaluation
of base and LoRA on the same held-out dialogues, int8 quantisation of the better one, and a serve
configuration -- every step a lineage run, reused on a rerun when nothing changed, and one HTML report.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from genlab.models.packs import DEFAULT_GENERATOR
from genlab.pipeline import LifecycleResult, load_lifecycle_recipe, run_lifecycle

DEMO_RECIPE = "lifecycle-demo"
# A one-line summary prompt, as the first demo used it (tests/integration/test_default_packs.py still does).
SUMMARY_PROMPT = "Summarize the following conversation in one sentence.\n\n{dialogue}\n\nSummary:"


def load_demo_recipe(model: str = DEFAULT_GENERATOR, overrides: Iterable[str] = ()) -> tuple[Any, Any]:
    """The builtin demo recipe for ``model``, with ``key=value`` overrides applied."""
    return load_lifecycle_recipe(DEMO_RECIPE, [f"select.model={model}", *overrides])


def run_demo(model: str = DEFAULT_GENERATOR, overrides: Iterable[str] = (), **options: Any) -> LifecycleResult:
    """Run the demo lifecycle; ``options`` go to :func:`genlab.pipeline.run_lifecycle` (``on_event``, ``force``...)."""
    overrides = list(overrides)
    recipe, recipe_dir = load_demo_recipe(model, overrides)
    return run_lifecycle(recipe, recipe_dir=recipe_dir, source=DEMO_RECIPE, overrides=overrides, **options)
