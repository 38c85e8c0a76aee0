"""Align: one candidate trained by PPO, DPO or Constitutional AI (:mod:`genlab.alignment`).

The candidate's recipe is the alignment module's own (``PpoRecipe``, ``DpoRecipe``,
``ConstitutionalRecipe``); the step sets its model and its starting adapter from ``start_from`` (the
base, or an adapt candidate: a LoRA adapter is merged in first, a fully fine-tuned model replaces the
base) and, for PPO, its prompts from the training split unless the candidate names other data.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError
from genlab.pipeline.candidates import candidate_inputs, resolve_candidate
from genlab.pipeline.recipe import ALIGN_METHODS, candidate_recipe_dir
from genlab.pipeline.step import StepContext, StepOutcome
from genlab.pipeline.workspace import StepFile

TRAIN_SPLIT = "lifecycle:train"  # the placeholder a PPO candidate's data path holds for the training split


class AlignStage:
    kind = "align"

    def __init__(self, candidate: str) -> None:
        self.candidate = candidate

    def settings(self, ctx: StepContext) -> Any:
        method, start_from, recipe = ctx.recipe.align_recipe(self.candidate)
        return {"method": method, "start_from": start_from, "recipe": recipe.model_dump()}

    def inputs(self, ctx: StepContext) -> dict[str, StepFile]:
        _, start_from, recipe = ctx.recipe.align_recipe(self.candidate)
        inputs = candidate_inputs(ctx, resolve_candidate(ctx, start_from))
        for name, path in self._data_files(ctx, recipe).items():
            inputs[name] = StepFile(path, "dataset", f"{name} ({path.name})")
        return inputs

    def run(self, ctx: StepContext, run: Any) -> StepOutcome:
        method, start_from, recipe = ctx.recipe.align_recipe(self.candidate)
        recipe = self._with_start_and_data(ctx, recipe, start_from)
        module, _, function = ALIGN_METHODS[method]
        ctx.progress(f"aligning candidate {self.candidate!r} with {method}")
        run_alignment = getattr(importlib.import_module(module), function)
        result = run_alignment(recipe, recipe_dir=candidate_recipe_dir(ctx.recipe, "align", self.candidate))
        output = _trained_output(method, result, self.candidate)
        kind = "adapter" if (output / "adapter_config.json").is_file() else "model"
        title, columns, rows = result.table()
        summary = {
            "candidate": self.candidate, "method": method, "start_from": start_from, "output": str(output),
            "table": {"title": title, "columns": columns, "rows": rows}, "result": result.to_dict(),
        }  # fmt: skip
        return StepOutcome(
            outputs={"output": StepFile(output, kind, f"{kind} {self.candidate} ({method})")},
            summary=summary,
            sub_runs={method: result.run_id},
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

    def _data_files(self, ctx: StepContext, recipe: Any) -> dict[str, Path]:
        """The local files the alignment reads besides the model (prompts, pairs, a constitution)."""
        from genlab.data.builtin import source_file
        from genlab.tuning.assemble import resolve_data_path

        folder = candidate_recipe_dir(ctx.recipe, "align", self.candidate)
        named = {"data": getattr(getattr(recipe, "data", None), "path", None)}
        named |= {"prompts": getattr(recipe, "prompts", None), "constitution": getattr(recipe, "constitution", None)}
        files = {}
        for name, value in named.items():
            if value == TRAIN_SPLIT:
                files[name] = ctx.output("scope", "train")
            elif value is not None and (path := source_file(resolve_data_path(value, folder))) is not None:
                files[name] = path
        return files


def _trained_output(method: str, result: Any, candidate: str) -> Path:
    if method == "ppo":
        return Path(result.adapter_path)
    if method == "dpo":
        return Path(result.output_path)
    if result.dpo is None:  # constitutional with its DPO stage off trains no model
        raise GenlabError(
            f"align.{candidate}: constitutional alignment without its dpo stage trains nothing to evaluate; "
            "set stages.dpo: true."
        )
    return Path(result.dpo.output_path)
