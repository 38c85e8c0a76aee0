"""Evaluate: the base and every candidate on the same validation rows, compared with the base; then, if
the recipe has a test split, the base and the best once on the test rows.

Each is one ``genlab eval`` run (:func:`genlab.evaluation.run.evaluate`: same template, same greedy
settings, predictions kept); :func:`genlab.evaluation.compare.compare_runs` puts them side by side
with the absolute improvement over the base (percentage points for 0-1 scores), bootstrap intervals
and paired differences. The best candidate by the metric of record (lowest for toxicity-like scores)
on the *validation* rows is what ``optimise`` and ``deploy`` take as ``best``, and the report says
whether it met the scope's target.

Splits: the held-out rows of the scope step are the validation split, unless ``data.test_size`` keeps
a seeded part of them as the test split (the rows are shuffled with ``random.Random(split_seed)`` and
the first ones taken); ``data.test`` names a separate test file instead. The test split is scored
once, for the base and the best, after the choice, and never used to choose; the report labels it.
``evaluate.harness`` adds lm-eval tasks (:func:`genlab.evaluation.run.evaluate_harness`) scored for
every candidate, e.g. a forgetting check on a standard task.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from genlab.atomic import atomic_write_json, atomic_write_text
from genlab.errors import InvalidValueError
from genlab.evaluation.compare import compare_runs
from genlab.evaluation.run import evaluate, evaluate_harness
from genlab.generation import GenerationSettings
from genlab.pipeline.candidates import Candidate, candidate_inputs, resolve_candidate
from genlab.pipeline.recipe import lower_is_better
from genlab.pipeline.step import StepContext, StepOutcome, library_outputs
from genlab.pipeline.workspace import StepFile
from genlab.tuning.assemble import resolve_data_path


class EvaluateStage:
    kind = "evaluate"

    def settings(self, ctx: StepContext) -> Any:
        assert ctx.recipe.evaluate is not None
        data = ctx.recipe.data.model_dump(
            include={"template", "chat", "input_field", "target_field", "test", "test_size", "test_target_field", "split_seed"}
        )
        return {"evaluate": ctx.recipe.evaluate.model_dump(), "data": data, "metric": ctx.recipe.scope.metric,
                "candidates": self._names(ctx)}  # fmt: skip

    def inputs(self, ctx: StepContext) -> dict[str, StepFile]:
        inputs = {"held_out": StepFile(ctx.output("scope", "held_out"), "dataset", "held-out split")}
        if ctx.recipe.evaluate and ctx.recipe.evaluate.baseline_shots:
            inputs["train"] = StepFile(ctx.output("scope", "train"), "dataset", "train split")
        if ctx.recipe.data.test is not None:
            inputs["test"] = StepFile(Path(resolve_data_path(ctx.recipe.data.test, ctx.recipe_dir)), "dataset", "test split")
        for name in self._names(ctx):
            inputs |= candidate_inputs(ctx, resolve_candidate(ctx, name))
        return inputs

    def run(self, ctx: StepContext, run: Any) -> StepOutcome:
        settings = ctx.recipe.evaluate
        assert settings is not None
        validation, test = self._splits(ctx)
        results, outputs, sub_runs = {}, {}, {}
        for name in self._names(ctx):
            ctx.progress(f"scoring {name} on the validation rows")
            result = self._evaluate(ctx, run.store, resolve_candidate(ctx, name), validation)
            results[name] = {"run_id": result.run_id, "n": result.n, "metrics": result.metrics, "split": "validation"}
            sub_runs[f"eval:{name}"] = result.run_id
            predictions = library_outputs(run.store, result.run_id)["predictions"]
            outputs[f"predictions:{name}"] = StepFile(predictions, "predictions", f"evaluation: {name}")
        names = list(results)
        table = compare_runs([results[n]["run_id"] for n in names], samples=settings.samples, report=False).to_dict()
        if settings.harness:
            harness_runs = []
            for name in names:
                ctx.progress(f"lm-eval {', '.join(settings.harness)} on {name}")
                result = self._harness(ctx, run.store, resolve_candidate(ctx, name))
                results[name]["metrics"] |= {k: v for k, v in result.metrics.items() if k != "seconds"}
                sub_runs[f"harness:{name}"] = result.run_id
                harness_runs.append(result.run_id)
            _merge(table, compare_runs(harness_runs, samples=0, report=False).to_dict())
        table |= {"candidates": names, "split": "validation"}
        outputs["comparison"] = StepFile(atomic_write_json(ctx.folder / "comparison.json", table), "comparison", "comparison")
        metric, target = ctx.recipe.scope.metric, ctx.recipe.scope.target
        best = _best(results, metric)
        score = results[best]["metrics"].get(metric)
        met = None
        if target is not None and score is not None:
            met = score <= target if lower_is_better(metric) else score >= target
        summary = {"candidates": results, "metric": metric, "best": best, "best_score": score, "target": target,
                   "target_met": met, "splits": {"validation": _count(validation), "test": _count(test) if test else None}}  # fmt: skip
        if test is not None:  # scored once, after the choice: base and best
            summary["test"] = self._score_test(ctx, run, test, ["base", best] if best != "base" else ["base"], outputs, sub_runs)
        run.log_metrics({f"{name}_{metric}": r["metrics"][metric] for name, r in results.items() if metric in r["metrics"]})
        return StepOutcome(outputs=outputs, summary=summary, sub_runs=sub_runs)

    def _names(self, ctx: StepContext) -> list[str]:
        return ["base", *ctx.recipe.candidate_names()]

    def _splits(self, ctx: StepContext) -> tuple[Path, Path | None]:
        """(validation file, test file or None), written in the step's folder when the held-out rows are split."""
        data = ctx.recipe.data
        held_out = ctx.output("scope", "held_out")
        if data.test is not None:
            return held_out, Path(resolve_data_path(data.test, ctx.recipe_dir))
        if not data.test_size:
            return held_out, None
        lines = [line for line in held_out.read_text(encoding="utf-8").splitlines() if line.strip()]
        size = int(data.test_size) if data.test_size >= 1 else round(data.test_size * len(lines))
        if not 1 <= size < len(lines):
            raise InvalidValueError(
                f"data.test_size={data.test_size!r} leaves {len(lines) - size} of the {len(lines)} held-out rows for "
                f"validation and {size} for the test: keep at least one row in each."
            )
        order = list(range(len(lines)))
        random.Random(data.split_seed).shuffle(order)
        chosen = set(order[:size])
        test = [line for i, line in enumerate(lines) if i in chosen]
        validation = [line for i, line in enumerate(lines) if i not in chosen]
        validation_file = atomic_write_text(ctx.folder / "validation.jsonl", "\n".join(validation) + "\n")
        return validation_file, atomic_write_text(ctx.folder / "test.jsonl", "\n".join(test) + "\n")

    def _score_test(
        self, ctx: StepContext, run: Any, test: Path, names: list[str], outputs: dict[str, StepFile], sub_runs: dict[str, str]
    ) -> dict[str, Any]:  # fmt: skip
        scored = {}
        for name in names:
            ctx.progress(f"scoring {name} once on the test rows")
            result = self._evaluate(ctx, run.store, resolve_candidate(ctx, name), test, split="test")
            scored[name] = {"run_id": result.run_id, "n": result.n, "metrics": result.metrics, "intervals": result.intervals}
            sub_runs[f"test:{name}"] = result.run_id
            outputs[f"test-predictions:{name}"] = StepFile(
                library_outputs(run.store, result.run_id)["predictions"], "predictions", f"test split: {name}"
            )
        table = compare_runs([scored[n]["run_id"] for n in names], samples=0, report=False).to_dict()
        table |= {"candidates": names, "split": "test"}
        outputs["test-comparison"] = StepFile(
            atomic_write_json(ctx.folder / "comparison-test.json", table), "comparison", "test comparison"
        )
        return {"split": "test", "candidates": scored, "paired": table["paired"], "paired_notes": table["paired_notes"]}

    def _model_and_adapter(self, candidate: Candidate) -> tuple[Any, str | None]:
        model: Any = candidate.model
        adapter = None
        if len(candidate.adapters) == 1:
            adapter = str(candidate.adapters[0])
        elif candidate.adapters:  # aligned on top of an adapted model: merge the first, apply the last
            model = Candidate(candidate.name, candidate.model, candidate.adapters[:-1]).load()
            adapter = str(candidate.adapters[-1])
        return model, adapter

    def _harness(self, ctx: StepContext, store: Any, candidate: Candidate) -> Any:
        settings = ctx.recipe.evaluate
        assert settings is not None
        model, adapter = self._model_and_adapter(candidate)
        include = [resolve_data_path(folder, ctx.recipe_dir) for folder in settings.harness_include]
        return evaluate_harness(
            model, settings.harness, adapter=adapter, include=include, num_fewshot=settings.harness_num_fewshot,
            limit=settings.harness_limit, batch_size=settings.batch_size, store=store,
        )  # fmt: skip

    def _evaluate(self, ctx: StepContext, store: Any, candidate: Candidate, rows: Path, split: str = "validation") -> Any:
        settings, data = ctx.recipe.evaluate, ctx.recipe.data
        assert settings is not None
        limit = min(settings.limit or _count(rows), _count(rows))
        shots = settings.baseline_shots if candidate.name == "base" else 0
        source = rows
        if shots:  # examples come from the training rows, after the queries (see genlab.evaluation.run)
            source = ctx.folder / f"queries-then-examples-{split}.jsonl"
            atomic_write_text(source, rows.read_text(encoding="utf-8") + ctx.output("scope", "train").read_text(encoding="utf-8"))
        target_field = data.target_field
        if split == "test" and data.test is not None:
            target_field = data.test_target_field or data.target_field
        model, adapter = self._model_and_adapter(candidate)
        return evaluate(
            model, str(source), task=ctx.recipe.scope.task, metrics=settings.metrics, limit=limit, adapter=adapter,
            template=data.template, shots=shots, input_field=data.input_field, target_field=target_field,
            settings=GenerationSettings(max_new_tokens=settings.max_new_tokens), batch_size=settings.batch_size,
            chat=data.chat, store=store,
        )  # fmt: skip


def _count(path: Path | None) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip()) if path else 0


def _merge(table: dict[str, Any], harness: dict[str, Any]) -> None:
    """Add the harness runs' scores to the comparison table (same candidates, same order)."""
    for name in harness["metrics"]:
        if name == "seconds" or name in table["metrics"]:
            continue
        table["metrics"].append(name)
        for key in ("values", "improvements", "intervals", "paired"):
            table[key][name] = harness[key][name]


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
