"""Optimise: quantise or prune the chosen candidate and measure it against the unoptimised candidate.

A candidate with adapters is merged into a standalone model first (:func:`genlab.models.merge`, its
own lineage run); :func:`genlab.optimize.quantize.quantize` or :func:`genlab.optimize.prune.prune`
then writes the optimised folder into the step's folder and measures both models the same way, each
in a fresh process (size on disk, parameters, peak memory, decode tokens/s, ROUGE-1 on the first
``eval_limit`` held-out rows). The merged intermediate is removed afterwards: it is the candidate's
weights again, which the adapter and base already hold.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from genlab.atomic import atomic_write_json
from genlab.pipeline.candidates import Candidate, candidate_inputs, resolve_candidate
from genlab.pipeline.step import StepContext, StepOutcome
from genlab.pipeline.workspace import StepFile


class OptimiseStage:
    kind = "optimise"

    def settings(self, ctx: StepContext) -> Any:
        assert ctx.recipe.optimise is not None
        data = ctx.recipe.data.model_dump(include={"template", "input_field", "target_field"})
        return {"optimise": ctx.recipe.optimise.model_dump(), "data": data}

    def inputs(self, ctx: StepContext) -> dict[str, StepFile]:
        inputs = {"held_out": StepFile(ctx.output("scope", "held_out"), "dataset", "held-out split")}
        return inputs | candidate_inputs(ctx, self._candidate(ctx))

    def _candidate(self, ctx: StepContext) -> Candidate:
        assert ctx.recipe.optimise is not None
        return resolve_candidate(ctx, ctx.recipe.optimise.candidate)

    def run(self, ctx: StepContext, run: Any) -> StepOutcome:
        settings = ctx.recipe.optimise
        assert settings is not None
        candidate = self._candidate(ctx)
        sub_runs: dict[str, str] = {}
        merged = None
        model = candidate.model
        if candidate.adapters:
            ctx.progress(f"merging candidate {candidate.name!r} into a standalone model")
            merged, merge_run = _merge(candidate, ctx.folder / "merged")
            model = str(merged)
            if merge_run:
                sub_runs["merge"] = merge_run
        ctx.progress(f"{settings.technique} of {candidate.name!r}" + (", then measuring both" if settings.measure else ""))
        report = self._optimise(ctx, model)
        if merged is not None:
            shutil.rmtree(merged, ignore_errors=True)
        sub_runs["optimize"] = report.run_id
        title, columns, rows = report.table()
        summary = {
            "candidate": candidate.name, "technique": settings.technique, "method": report.method,
            "measured": settings.measure, "report": report.to_dict(),
            "table": {"title": title, "columns": columns, "rows": rows},
        }  # fmt: skip
        report_file = atomic_write_json(ctx.folder / "optimization.json", summary)
        label = f"optimised model ({report.method})"
        return StepOutcome(
            outputs={"model": StepFile(Path(report.artifact), "model", label),
                     "report": StepFile(report_file, "optimization-report", "optimisation table")},
            summary=summary,
            sub_runs=sub_runs,
        )  # fmt: skip

    def _optimise(self, ctx: StepContext, model: str) -> Any:
        from genlab.optimize.measure import EvalSpec

        settings, data = ctx.recipe.optimise, ctx.recipe.data
        assert settings is not None
        held_out = ctx.output("scope", "held_out")
        rows = sum(1 for line in held_out.read_text(encoding="utf-8").splitlines() if line.strip())
        spec = EvalSpec(
            data=str(held_out), metric="rouge1" if ctx.recipe.scope.task == "summarize" else "perplexity",
            limit=min(settings.eval_limit, rows), input_field=data.input_field, target_field=data.target_field,
            template=data.template, max_new_tokens=settings.max_new_tokens, speed_prompts=settings.speed_prompts,
            speed_tokens=settings.speed_tokens,
        )  # fmt: skip
        if settings.technique == "quantize":
            from genlab.optimize.quantize import quantize

            method = settings.quantize.method
            return quantize(
                model, method, spec, ctx.folder / f"model-{method}", measure_models=settings.measure,
                quantize_lm_head=settings.quantize.quantize_lm_head,
            )  # fmt: skip
        from genlab.optimize.prune import prune, prune_settings

        prune_config = prune_settings(**settings.prune)
        return prune(model, prune_config, spec, ctx.folder / f"model-pruned-{prune_config.method}", progress=ctx.show_progress)


def _merge(candidate: Candidate, output: Path) -> tuple[Path, str | None]:
    """The candidate's adapters merged into its model, saved at ``output``; the merge's lineage run id."""
    from genlab.models.merge import merge_adapter_into_model

    if len(candidate.adapters) == 1:
        result = merge_adapter_into_model(candidate.adapters[0], output, model=candidate.model)
        return Path(result.output), result.run_id
    from genlab.models.adapters import merge_and_save

    start = Candidate(candidate.name, candidate.model, candidate.adapters[:-1]).load()
    return merge_and_save(start, candidate.adapters[-1], output), None  # type: ignore[arg-type]
