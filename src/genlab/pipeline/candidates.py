"""What a candidate name stands for once its step has run: a model, plus the adapters applied to it in order.

``base`` is the selected model; an adapt candidate is the base plus its adapter (or, for full-weight
methods, its own model folder); an align candidate is whatever it started from plus its own adapter.
``best`` is the candidate the evaluate step ranked first by the metric of record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from genlab.errors import GenlabError
from genlab.pipeline.step import StepContext
from genlab.pipeline.workspace import StepFile


@dataclass(frozen=True)
class Candidate:
    name: str
    model: str  # a model name or folder, as load_model takes it
    adapters: list[Path] = field(default_factory=list)  # applied in this order

    def load(self) -> object:
        """The candidate ready to generate: the model with every adapter merged in."""
        from genlab.models.adapters import merge_adapter
        from genlab.models.load import load_model

        loaded = load_model(self.model)
        for adapter in self.adapters:
            loaded = merge_adapter(loaded, adapter)
        return loaded


def resolve_candidate(ctx: StepContext, name: str) -> Candidate:
    recipe = ctx.recipe
    if name == "best":
        return resolve_candidate(ctx, ctx.state("evaluate").summary["best"])
    if name == "base":
        return Candidate("base", recipe.select.model)
    if name in recipe.adapt:
        return _with_output(Candidate(name, recipe.select.model), ctx, f"adapt.{name}")
    if name in recipe.align:
        _, start_from, _ = recipe.align_recipe(name)
        start = resolve_candidate(ctx, start_from)
        return _with_output(Candidate(name, start.model, list(start.adapters)), ctx, f"align.{name}")
    raise GenlabError(f"unknown candidate {name!r}: choose base, best, or one of {', '.join(recipe.candidate_names())}.")


def _with_output(start: Candidate, ctx: StepContext, step: str) -> Candidate:
    record = ctx.state(step).outputs["output"]
    if record["kind"] == "model":  # full-weight methods save a whole model: it replaces what came before
        return Candidate(start.name, record["path"])
    return Candidate(start.name, start.model, [*start.adapters, Path(record["path"])])


def candidate_inputs(ctx: StepContext, candidate: Candidate) -> dict[str, StepFile]:
    """The files a candidate is made of, as step inputs (the model folder and each adapter)."""
    inputs: dict[str, StepFile] = {}
    model = model_input(ctx) if candidate.model == ctx.recipe.select.model else StepFile(
        Path(candidate.model), "model", f"model {candidate.name}"
    )
    if model is not None:
        inputs[f"{candidate.name}:model"] = model
    for index, adapter in enumerate(candidate.adapters):
        inputs[f"{candidate.name}:adapter{index}"] = StepFile(adapter, "adapter", f"adapter {adapter.name}")
    return inputs


def model_input(ctx: StepContext) -> StepFile | None:
    """The selected model's folder (or file) as an input, when it is local."""
    summary = ctx.state("select").summary
    path = summary.get("model_path")
    return StepFile(Path(path), "model", f"model {summary['model']}") if path else None
