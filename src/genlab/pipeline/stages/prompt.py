"""Prompt: the zero/one/few-shot baseline on the held-out rows (:func:`genlab.prompting.compare.compare_shots`).

The queries are the held-out rows; solved examples come from the training rows. ``compare_shots``
takes one file whose first ``limit`` rows are the queries and whose other rows are the example pool,
so the step writes that file (held-out rows, then training rows) and passes ``limit``.
"""

from __future__ import annotations

from typing import Any

from genlab.atomic import atomic_write_text
from genlab.pipeline.candidates import model_input
from genlab.pipeline.step import StepContext, StepOutcome, library_outputs
from genlab.pipeline.workspace import StepFile


class PromptStage:
    kind = "prompt"

    def settings(self, ctx: StepContext) -> Any:
        assert ctx.recipe.prompt is not None
        return {"prompt": ctx.recipe.prompt.model_dump(), "data": ctx.recipe.data.model_dump(include={"template", "chat"})}

    def inputs(self, ctx: StepContext) -> dict[str, StepFile]:
        inputs = {
            "held_out": StepFile(ctx.output("scope", "held_out"), "dataset", "held-out split"),
            "train": StepFile(ctx.output("scope", "train"), "dataset", "train split"),
        }
        model = model_input(ctx)
        return inputs | ({"model": model} if model is not None else {})

    def run(self, ctx: StepContext, run: Any) -> StepOutcome:
        from genlab.generation import GenerationSettings
        from genlab.prompting.compare import compare_shots

        prompt, data = ctx.recipe.prompt, ctx.recipe.data
        assert prompt is not None
        queries = ctx.output("scope", "held_out")
        held_out = queries.read_text(encoding="utf-8")
        pool_file = atomic_write_text(
            ctx.folder / "queries-then-examples.jsonl", held_out + ctx.output("scope", "train").read_text(encoding="utf-8")
        )
        rows = sum(1 for line in held_out.splitlines() if line.strip())
        limit = min(prompt.limit or rows, rows)
        comparison = compare_shots(
            ctx.recipe.select.model, str(pool_file), prompt.shots, limit=limit, template=data.template,
            selection=prompt.selection, input_field=data.input_field, target_field=data.target_field,
            settings=GenerationSettings(max_new_tokens=prompt.max_new_tokens), batch_size=prompt.batch_size,
            chat=data.chat, on_progress=ctx.progress,
        )  # fmt: skip
        outputs = {
            kind: StepFile(path, kind, "prompt baseline" if kind == "comparison" else "prompt predictions")
            for kind, path in library_outputs(run.store, comparison.run_id).items()
        }
        results = [
            {k: getattr(r, k) for k in ("shots", "rouge1", "rouge2", "rougeL", "rougeLsum", "mean_prompt_tokens",
                                        "dropped_examples", "new_tokens", "seconds", "samples")}
            for r in comparison.results
        ]  # fmt: skip
        best = max(comparison.results, key=lambda r: r.rouge1)
        summary = {"limit": limit, "results": results, "best_shots": best.shots, "best_rouge1": best.rouge1}
        return StepOutcome(outputs=outputs, summary=summary, sub_runs={"prompt-compare": comparison.run_id})

