"""Adapt: one candidate trained by :func:`genlab.tuning.trainer.finetune` on the training split.

Resuming. The trainer keeps checkpoints in ``$GENLAB_HOME/finetune/<lifecycle>-<candidate>/checkpoints``
until its run completes; a rerun of the step after a crash continues from the last one, with the same
result as an uninterrupted run, when they were written by this very step
(:mod:`genlab.pipeline.step_resume`, shared with the align stage). The candidate's method comes from
the registry (:func:`genlab.registry.get_method`), like ``genlab finetune``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genlab.pipeline.candidates import model_input
from genlab.pipeline.recipe import candidate_recipe_dir
from genlab.pipeline.step import StepContext, StepOutcome
from genlab.pipeline.step_resume import resume_step_training, step_training_done
from genlab.pipeline.workspace import StepFile
from genlab.registry import get_method


class AdaptStage:
    kind = "adapt"

    def __init__(self, candidate: str) -> None:
        self.candidate = candidate

    def settings(self, ctx: StepContext) -> Any:
        return ctx.recipe.finetune_recipe(self.candidate).model_dump()

    def inputs(self, ctx: StepContext) -> dict[str, StepFile]:
        inputs = {"train": StepFile(ctx.output("scope", "train"), "dataset", "train split")}
        model = model_input(ctx)
        return inputs | ({"model": model} if model is not None else {})

    def run(self, ctx: StepContext, run: Any) -> StepOutcome:
        recipe = ctx.recipe.finetune_recipe(self.candidate)
        data = recipe.data.model_copy(update={"path": str(ctx.output("scope", "train"))})
        recipe = recipe.model_copy(update={"data": data})
        method = get_method(recipe.method, "adapt")
        checkpoints = method.checkpoint_folder(recipe)
        resume = resume_step_training(checkpoints, ctx.key)
        ctx.progress(f"{'resuming' if resume else 'training'} {recipe.method} candidate {self.candidate!r}")
        result = method.run(
            recipe, store=run.store, resume=resume, recipe_dir=candidate_recipe_dir(ctx.recipe, "adapt", self.candidate),
            callbacks=ctx.trainer_callbacks, progress=ctx.show_progress,
        )  # fmt: skip
        step_training_done(checkpoints)
        kind = result.output_kind
        details = result.details
        summary = {
            "candidate": self.candidate, "method": recipe.method, "output": result.output_path,
            "resumed": resume, "trainable_params": details["trainable_params"], "total_params": details["total_params"],
            "trainable_percent": details["trainable_percent"], "metrics": result.metrics,
        }  # fmt: skip
        label = f"{'adapter' if kind == 'adapter' else 'model'} {self.candidate} ({recipe.method})"
        return StepOutcome(
            outputs={"output": StepFile(Path(result.output_path), kind, label)},
            summary=summary,
            sub_runs={"finetune": result.run_id},
        )
