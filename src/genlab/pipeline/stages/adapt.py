"""Adapt: one candidate trained by :func:`genlab.tuning.trainer.finetune` on the training split.

Resuming. The trainer keeps checkpoints in ``$GENLAB_HOME/finetune/<lifecycle>-<candidate>/checkpoints``
until its run completes, and ``resume=True`` continues from the last one with the same result as an
uninterrupted run. The step writes its cache key beside them before training; when a rerun finds
checkpoints under the same key, the earlier attempt was this very step (same settings, same data,
same model) and it resumes; checkpoints under another key belong to settings that changed, and are
removed so training starts over. A process killed while writing a checkpoint leaves a folder without
its ``trainer_state.json`` (the Trainer writes that file last); such a folder does not count as a
checkpoint here, and the trainer removes it before resuming from the newest complete one
(:func:`genlab.training.checkpoints.drop_incomplete_checkpoints`). The candidate's method comes from the
registry (:func:`genlab.registry.get_method`), like ``genlab finetune``'s.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from genlab.pipeline.candidates import model_input
from genlab.pipeline.recipe import candidate_recipe_dir
from genlab.pipeline.step import StepContext, StepOutcome
from genlab.pipeline.workspace import StepFile
from genlab.registry import get_method
from genlab.training.checkpoints import last_checkpoint
from genlab.tuning.trainer import work_dir

KEY_FILE = "lifecycle-key"


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
        folder = work_dir(recipe)
        resume = last_checkpoint(folder / "checkpoints") is not None  # complete ones only
        key_file = folder / KEY_FILE
        if resume and (not key_file.is_file() or key_file.read_text().strip() != ctx.key):
            shutil.rmtree(folder / "checkpoints")  # from other settings or data: not this step's to continue
            resume = False
        folder.mkdir(parents=True, exist_ok=True)
        key_file.write_text(ctx.key + "\n")
        ctx.progress(f"{'resuming' if resume else 'training'} {recipe.method} candidate {self.candidate!r}")
        result = get_method(recipe.method, "adapt").run(
            recipe, store=run.store, resume=resume, recipe_dir=candidate_recipe_dir(ctx.recipe, "adapt", self.candidate),
            callbacks=ctx.trainer_callbacks, progress=ctx.show_progress,
        )  # fmt: skip
        key_file.unlink(missing_ok=True)
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
