"""The catastrophic-forgetting check: a second task scored before and after fine-tuning.

Fine-tuning on one task can lower a model's scores on others (the course's "catastrophic
forgetting"). When a recipe names ``evaluation.forgetting_task`` (a multiple-choice benchmark), the
base is scored on it before training and the trained model after; the change in accuracy, in
percentage points, is reported beside the task's own improvement. Both evaluations are lineage runs
linked to the fine-tuning run.

A method whose :class:`~genlab.tuning.method_kind.FinetuneKind` says the check does not apply skips
it: a soft prompt (prompt tuning) leaves every base weight as it was and multiple-choice scoring reads
no soft prompt, so it would only ever report a change of zero.
"""

from __future__ import annotations

from typing import Any

from genlab.models.load import LoadedModel
from genlab.tuning.recipe import FinetuneRecipe


def wants_forgetting_check(recipe: FinetuneRecipe) -> bool:
    settings = recipe.evaluation
    return settings.enabled and settings.forgetting_task is not None


def score_second_task(loaded: LoadedModel, recipe: FinetuneRecipe, run: Any, *, label: str) -> Any:
    """Score ``loaded`` on the recipe's forgetting task; link the evaluation run to ``run``."""
    from genlab.evaluation.run import evaluate

    settings = recipe.evaluation
    assert settings.forgetting_task is not None
    result = evaluate(
        loaded, settings.forgetting_task, task="multiple-choice", limit=settings.forgetting_limit,
        batch_size=settings.batch_size, store=run.store,
    )  # fmt: skip
    run.store.link(("run", run.id), ("run", result.run_id), label)
    return result


def forgetting_metrics(before: Any, after: Any) -> dict[str, float]:
    """Accuracy on the second task before and after, and the change in percentage points (negative: forgot)."""
    metrics: dict[str, float] = {}
    for name in ("accuracy", "acc_norm"):
        if name in before.metrics and name in after.metrics:
            metrics[f"forgetting_{name}_before"] = before.metrics[name]
            metrics[f"forgetting_{name}_after"] = after.metrics[name]
            metrics[f"forgetting_{name}_change_pp"] = 100.0 * (after.metrics[name] - before.metrics[name])
    return metrics
