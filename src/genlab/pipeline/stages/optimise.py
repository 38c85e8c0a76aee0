"""Optimise: quantise or prune the chosen candidate and measure it against the unoptimised candidate.

A candidate with adapters is merged into a standalone model first (:func:`genlab.models.merge`, its
own lineage run); the registered optimize method named by ``optimise.technique`` (``quantize`` or
``prune``, :mod:`genlab.registry`) then writes the optimised folder into the step's folder, recording
into the pass's lineage store, and measures both models the same way, each in a fresh process (size
on disk, parameters, peak memory, decode tokens/s, ROUGE-1 on the first ``eval_limit`` held-out rows).
The merged intermediate is removed afterwards: it is the candidate's weights again, which the adapter
and base already hold.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from genlab.atomic import atomic_write_json
from genlab.methods import MethodResult
from genlab.optimize.measure import EvalSpec
from genlab.pipeline.candidates import Candidate, candidate_inputs, resolve_candidate
from genlab.pipeline.step import StepContext, StepOutcome
from genlab.pipeline.workspace import StepFile
from genlab.registry import get_method


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
            merged, merge_run = _merge(candidate, ctx.folder / "merged", run.store)
            model = str(merged)
            if merge_run:
                sub_runs["merge"] = merge_run
        ctx.progress(f"{settings.technique} of {candidate.name!r}" + (", then measuring both" if settings.measure else ""))
        result = self._optimise(ctx, model, run)
        if merged is not None:
            shutil.rmtree(merged, ignore_errors=True)
        sub_runs["optimize"] = result.run_id
        report = result.details  # the OptimizationReport as a dict: the method, both measurements, ratios
        summary = {
            "candidate": candidate.name, "technique": settings.technique, "method": report["method"],
            "measured": settings.measure, "report": report,
            "table": {"title": result.table.title, "columns": result.table.columns, "rows": result.table.rows},
        }  # fmt: skip
        report_file = atomic_write_json(ctx.folder / "optimization.json", summary)
        label = f"optimised model ({report['method']})"
        return StepOutcome(
            outputs={"model": StepFile(Path(result.output_path), "model", label),
                     "report": StepFile(report_file, "optimization-report", "optimisation table")},
            summary=summary,
            sub_runs=sub_runs,
        )  # fmt: skip

    def _optimise(self, ctx: StepContext, model: str, run: Any) -> MethodResult:
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
        technique = settings.technique
        recipe = {  # the method's settings are the section named after it (optimise.quantize, optimise.prune)
            "model": model, technique: getattr(settings, technique), "evaluation": spec, "measure": settings.measure,
            "output": str(ctx.folder / f"model-{technique}"),
        }  # fmt: skip
        return get_method(technique, "optimize").run(recipe, store=run.store, progress=ctx.show_progress)


def _merge(candidate: Candidate, output: Path, store: Any) -> tuple[Path, str | None]:
    """The candidate's adapters merged into its model, saved at ``output``; the merge's lineage run id."""
    from genlab.models.merge import merge_adapter_into_model

    if len(candidate.adapters) == 1:
        result = merge_adapter_into_model(candidate.adapters[0], output, model=candidate.model, store=store)
        return Path(result.output), result.run_id
    from genlab.models.adapters import merge_and_save

    start = Candidate(candidate.name, candidate.model, candidate.adapters[:-1]).load()
    return merge_and_save(start, candidate.adapters[-1], output), None  # type: ignore[arg-type]
