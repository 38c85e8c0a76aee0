"""Evaluate: the base and every candidate on the same held-out rows, compared with the base.

Each is one ``genlab eval`` run (:func:`genlab.evaluation.run.evaluate`: same template, same greedy
settings, predictions kept); :func:`genlab.evaluation.compare.compare_runs` puts them side by side
with the absolute improvement over the base (percentage points for 0-1 scores). The best candidate by
the metric of record (lowest for toxicity-like scores) is what ``optimise`` and ``deploy`` take as
``best``, and the report says whether it met the scope's target.
"""

from __future__ import annotations

from typing import Any

from genlab.atomic import atomic_write_json
from genlab.pipeline.candidates import Candidate, candidate_inputs, resolve_candidate
from genlab.pipeline.recipe import lower_is_better
from genlab.pipeline.step import StepContext, StepOutcome, library_outputs
from genlab.pipeline.workspace import StepFile


class EvaluateStage:
    kind = "evaluate"

    def settings(self, ctx: StepContext) -> Any:
        assert ctx.recipe.evaluate is not None
        data = ctx.recipe.data.model_dump(include={"template", "chat", "input_field", "target_field"})
        return {"evaluate": ctx.recipe.evaluate.model_dump(), "data": data, "metric": ctx.recipe.scope.metric,
                "candidates": self._names(ctx)}  # fmt: skip

    def inputs(self, ctx: StepContext) -> dict[str, StepFile]:
        inputs = {"held_out": StepFile(ctx.output("scope", "held_out"), "dataset", "held-out split")}
        if ctx.recipe.evaluate and ctx.recipe.evaluate.baseline_shots:
            inputs["train"] = StepFile(ctx.output("scope", "train"), "dataset", "train split")
        for name in self._names(ctx):
            inputs |= candidate_inputs(ctx, resolve_candidate(ctx, name))
        return inputs

    def run(self, ctx: StepContext, run: Any) -> StepOutcome:
        from genlab.evaluation.compare import compare_runs

        settings = ctx.recipe.evaluate
        assert settings is not None
        results, outputs = {}, {}
        for name in self._names(ctx):
            ctx.progress(f"scoring {name} on the held-out rows")
            result = self._evaluate(ctx, resolve_candidate(ctx, name))
            results[name] = {"run_id": result.run_id, "n": result.n, "metrics": result.metrics}
            predictions = library_outputs(run.store, result.run_id)["predictions"]
            outputs[f"predictions:{name}"] = StepFile(predictions, "predictions", f"evaluation: {name}")
        names = list(results)
        comparison = compare_runs([results[n]["run_id"] for n in names], samples=settings.samples, report=False)
        table = comparison.to_dict() | {"candidates": names}
        outputs["comparison"] = StepFile(atomic_write_json(ctx.folder / "comparison.json", table), "comparison", "comparison")
        metric, target = ctx.recipe.scope.metric, ctx.recipe.scope.target
        best = _best(results, metric)
        score = results[best]["metrics"].get(metric)
        met = None
        if target is not None and score is not None:
            met = score <= target if lower_is_better(metric) else score >= target
        summary = {"candidates": results, "metric": metric, "best": best, "best_score": score, "target": target,
                   "target_met": met}  # fmt: skip
        run.log_metrics({f"{name}_{metric}": r["metrics"][metric] for name, r in results.items() if metric in r["metrics"]})
        return StepOutcome(outputs=outputs, summary=summary, sub_runs={f"eval:{n}": r["run_id"] for n, r in results.items()})

    def _names(self, ctx: StepContext) -> list[str]:
        return ["base", *ctx.recipe.candidate_names()]

    def _evaluate(self, ctx: StepContext, candidate: Candidate) -> Any:
        from genlab.evaluation.run import evaluate
        from genlab.generation import GenerationSettings

        settings, data = ctx.recipe.evaluate, ctx.recipe.data
        assert settings is not None
        held_out = ctx.output("scope", "held_out")
        rows = sum(1 for line in held_out.read_text(encoding="utf-8").splitlines() if line.strip())
        limit = min(settings.limit or rows, rows)
        shots = settings.baseline_shots if candidate.name == "base" else 0
        source = held_out
        if shots:  # examples come from the training rows, after the queries (see genlab.evaluation.run)
            source = ctx.folder / "queries-then-examples.jsonl"
            from genlab.atomic import atomic_write_text

            atomic_write_text(source, held_out.read_text(encoding="utf-8") + ctx.output("scope", "train").read_text(encoding="utf-8"))
        model: Any = candidate.model
        adapter = None
        if len(candidate.adapters) == 1:
            adapter = str(candidate.adapters[0])
        elif candidate.adapters:  # aligned on top of an adapted model: merge the first, apply the last
            model = Candidate(candidate.name, candidate.model, candidate.adapters[:-1]).load()
            adapter = str(candidate.adapters[-1])
        return evaluate(
            model, str(source), task=ctx.recipe.scope.task, metrics=settings.metrics, limit=limit, adapter=adapter,
            template=data.template, shots=shots, input_field=data.input_field, target_field=data.target_field,
            settings=GenerationSettings(max_new_tokens=settings.max_new_tokens), batch_size=settings.batch_size,
            chat=data.chat,
        )  # fmt: skip


def _best(results: dict[str, dict[str, Any]], metric: str) -> str:
    """The candidate with the best score of record (the base wins ties: a change must earn its place)."""
    scored = [(name, r["metrics"][metric]) for name, r in results.items() if metric in r["metrics"]]
    if not scored:
        return "base"
    sign = -1.0 if lower_is_better(metric) else 1.0
    best_name, best_value = scored[0]
    for name, value in scored[1:]:
        if sign * value > sign * best_value:
            best_name, best_value = name, value
    return best_name
