"""What a lifecycle stage sees and returns, and the interface every stage follows.

A stage says which settings decide its output (``settings``), which files it reads (``inputs``,
content-hashed into the cache key and recorded in lineage) and does its work (``run``) by calling the
library. The stages themselves are :mod:`genlab.pipeline.stages`; this module sits below them, so a
stage imports it and nothing imports a stage but :func:`genlab.pipeline.stages.steps_for`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from genlab.pipeline.recipe import LifecycleRecipe
from genlab.pipeline.workspace import StepFile, StepState


@dataclass
class StepOutcome:
    outputs: dict[str, StepFile]
    summary: dict[str, Any] = field(default_factory=dict)  # JSON: what later steps and the report read
    sub_runs: dict[str, str] = field(default_factory=dict)  # label -> lineage run id of a library run inside


@dataclass
class StepContext:
    """What a stage sees: the recipe, its own folder, and the states of the steps before it."""

    recipe: LifecycleRecipe
    recipe_dir: Path | None
    step: str
    folder: Path  # this step's own (fresh) folder in the workspace
    states: dict[str, StepState]  # earlier steps of this lifecycle, ran or reused
    key: str = ""  # this step's cache key
    progress: Callable[[str], None] = lambda message: None
    show_progress: bool = False  # progress bars on stderr (training)
    trainer_callbacks: Sequence[Any] = ()  # extra transformers callbacks for adapt and align training (tests use them)

    def state(self, step: str) -> StepState:
        return self.states[step]

    def output(self, step: str, name: str) -> Path:
        return self.states[step].output(name)


class Stage(Protocol):
    kind: str  # the stage's name: scope, select, prompt, adapt, align, evaluate, optimise, deploy

    def settings(self, ctx: StepContext) -> Any:
        """Everything in the recipe that decides this step's output (JSON)."""

    def inputs(self, ctx: StepContext) -> dict[str, StepFile]:
        """Files this step reads: their content hashes join the cache key; lineage records them as inputs."""

    def run(self, ctx: StepContext, run: Any) -> StepOutcome:
        """Do the work; ``run`` is this step's lineage run (:class:`genlab.lineage.Run`)."""


def always_runs(stage: Stage, ctx: StepContext) -> bool:
    """A stage whose effect is outside its files (a started server) runs every time."""
    check = getattr(stage, "always_runs", None)
    return bool(check(ctx)) if check is not None else False


def library_outputs(store: Any, run_id: str) -> dict[str, Path]:
    """The files a library run wrote, by artifact kind (the last one of each kind)."""
    return {artifact.kind: Path(artifact.path) for artifact in store.artifacts_of(run_id, "output")}
