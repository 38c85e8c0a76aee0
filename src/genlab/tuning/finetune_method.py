"""A fine-tuning method as a :class:`genlab.methods.Method`: ``genlab finetune`` with one way to prepare the model.

Every fine-tuning method (full, LoRA, QLoRA, prompt tuning, selective, continued pre-training) shares
the recipe (:class:`~genlab.tuning.recipe.FinetuneRecipe`), the data and the Trainer run
(:func:`genlab.tuning.trainer.finetune`); what differs is how the loaded model becomes the model to
train -- that function is what each method's folder gives here.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from genlab.errors import InvalidValueError
from genlab.methods import Method, MethodResult, RunOptions, TerminalTable
from genlab.tuning.method_kind import FinetuneKind
from genlab.tuning.recipe import FinetuneRecipe, finetune_checkpoints

if TYPE_CHECKING:
    from genlab.tuning.trainer import FinetuneResult, PrepareModel

# peft still reads a transformers attribute deprecated in 5.x; the warning is theirs and says nothing to users.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)

DATA_FIELDS = ("data.path", "evaluation.forgetting_task")


def finetune_method(
    name: str, help: str, prepare: PrepareModel, *, memory_mode: str, kind: FinetuneKind = FinetuneKind(),
    check_available: Callable[[], None] | None = None,
) -> Method:
    """The method ``name``: a recipe whose ``method`` is ``name``, trained with ``prepare``; ``memory_mode``
    is how :mod:`genlab.models.estimate` counts its memory (``train`` when every touched weight trains);
    ``kind`` is what it changes about the shared run (raw text, no forgetting check)."""

    def train(recipe: FinetuneRecipe, options: RunOptions) -> MethodResult:
        if recipe.method != name:
            raise InvalidValueError(f"method={recipe.method!r} is not allowed here: this runs the {name} method.")
        # transformers, peft and torch are imported when the method runs, not when the CLI starts (genlab.methods).
        from genlab.tuning.trainer import finetune

        result = finetune(recipe, prepare=prepare, kind=kind, **options.keywords())
        return finetune_result(result, recipe)

    return Method(
        name, "adapt", FinetuneRecipe, train, help, DATA_FIELDS, check_available, checkpoints=finetune_checkpoints,
        memory_mode=memory_mode,
    )  # fmt: skip


def finetune_result(result: FinetuneResult, recipe: FinetuneRecipe) -> MethodResult:
    """The contract's result for a fine-tuning run (an empty run id on a DDP rank other than 0)."""
    rows: list[list[Any]] = [
        ["method", result.method],
        ["trainable parameters", f"{result.trainable_params:,} of {result.total_params:,} ({result.trainable_percent:.3f} %)"],
    ]
    skip = ("trainable_params", "total_params", "trainable_percent")
    rows += [[key, f"{value:.4g}"] for key, value in result.metrics.items() if key not in skip]
    rows += [["output", result.adapter_path], ["report", result.report]]
    table = TerminalTable(f"fine-tuned {recipe.model} ({recipe.name})", ["", "value"], rows)
    details = {key: value for key, value in result.to_dict().items() if key not in ("metrics", "loss_history")}
    return MethodResult(
        recipe.method, result.run_id, result.adapter_path, result.output_kind, result.metrics,  # type: ignore[arg-type]
        result.loss_history, table, details,
    )  # fmt: skip
