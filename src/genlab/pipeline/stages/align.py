"""Align: one candidate trained by an align method from the registry (PPO, DPO, Constitutional AI, ...).

The candidate's recipe is the method's own (``PpoRecipe``, ``DpoRecipe``, ...); the step sets its
model and its starting adapter from ``start_from`` (the base, or an adapt candidate: a LoRA adapter is
merged in first, a fully fine-tuned model replaces the base) and, for a method that reads the task's
rows (PPO's prompts), its data from the training split unless the candidate names other data. The
method's :class:`genlab.methods.MethodResult` says where its output is and what kind it is. A rerun
after a crash mid-training resumes from the method's checkpoints when this very step wrote them
(:mod:`genlab.pipeline.step_resume`), as the adapt stage does; the lifecycle's Trainer callbacks
reach the method too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genlab.data.builtin import source_file
from genlab.errors import GenlabError
from genlab.pipeline.candidates import candidate_inputs, resolve_candidate
from genlab.pipeline.recipe import candidate_recipe_dir
from genlab.pipeline.step import StepContext, StepOutcome
from genlab.pipeline.step_resume import resume_step_training, step_training_done
from genlab.pipeline.workspace import StepFile
from genlab.registry import get_method
from genlab.tuning.assemble import resolve_data_path

TRAIN_SPLIT = "lifecycle:train"  # the placeholder a candidate's data path holds for the training split


class AlignStage:
    kind = "align"

    def __init__(self, candidate: str) -> None:
        self.candidate = candidate

    def settings(self, ctx: StepContext) -> Any:
        method, start_from, recipe = ctx.recipe.align_recipe(self.candidate)
        return {"method": method, "start_from": start_from, "recipe": recipe.model_dump()}

    def inputs(self, ctx: StepContext) -> dict[str, StepFile]:
        method, start_from, recipe = ctx.recipe.align_recipe(self.candidate)
        inputs = candidate_inputs(ctx, resolve_candidate(ctx, start_from))
        for name, path in self._data_files(ctx, method, recipe).items():
            inputs[name] = StepFile(path, "dataset", f"{name} ({path.name})")
        return inputs

    def run(self, ctx: StepContext, run: Any) -> StepOutcome:
        name, start_from, recipe = ctx.recipe.align_recipe(self.candidate)
        recipe = self._with_start_and_data(ctx, recipe, start_from)
        method = get_method(name, "align")
        checkpoints = method.checkpoint_folder(recipe)
        resume = resume_step_training(checkpoints, ctx.key)
        ctx.progress(f"{'resuming' if resume else 'aligning'} candidate {self.candidate!r} with {name}")
        result = method.run(
            recipe, store=run.store, recipe_dir=candidate_recipe_dir(ctx.recipe, "align", self.candidate), resume=resume,
            callbacks=ctx.trainer_callbacks, progress=ctx.show_progress,
        )  # fmt: skip
        step_training_done(checkpoints)
        if result.output_kind == "dataset":  # e.g. constitutional with its DPO stage off
            raise GenlabError(
                f"align.{self.candidate}: {name} wrote a dataset ({result.output_path}) and no model to evaluate; "
                "enable the stage that trains one (for constitutional: stages.dpo: true)."
            )
        output = Path(result.output_path)
        summary = {
            "candidate": self.candidate, "method": name, "start_from": start_from, "output": str(output), "resumed": resume,
            "table": {"title": result.table.title, "columns": result.table.columns, "rows": result.table.rows},
            "result": result.details,
        }  # fmt: skip
        return StepOutcome(
            outputs={"output": StepFile(output, result.output_kind, f"{result.output_kind} {self.candidate} ({name})")},
            summary=summary,
            sub_runs={name: result.run_id},
        )

    def _with_start_and_data(self, ctx: StepContext, recipe: Any, start_from: str) -> Any:
        start = resolve_candidate(ctx, start_from)
        changes: dict[str, Any] = {"model": start.model}
        if start.adapters:
            changes["adapter"] = str(start.adapters[-1])  # an adapt candidate has one adapter on the base
        data = getattr(recipe, "data", None)
        if data is not None and getattr(data, "path", None) == TRAIN_SPLIT:
            changes["data"] = data.model_copy(update={"path": str(ctx.output("scope", "train"))})
        return recipe.model_copy(update=changes)

    def _data_files(self, ctx: StepContext, method: str, recipe: Any) -> dict[str, Path]:
        """The local files the method reads besides the model (its ``data_fields``: prompts, pairs, a constitution)."""
        folder = candidate_recipe_dir(ctx.recipe, "align", self.candidate)
        files = {}
        for field, value in get_method(method, "align").data_paths(recipe).items():
            name = field.split(".")[0]  # "data.path" -> "data", as the step's inputs were named before
            if value == TRAIN_SPLIT:
                files[name] = ctx.output("scope", "train")
            elif (path := source_file(resolve_data_path(value, folder))) is not None:
                files[name] = path
        return files
