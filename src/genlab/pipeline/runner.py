"""`genlab run RECIPE`: a lifecycle recipe's steps in order, each a lineage run, reused when nothing changed.

One lineage run of kind ``lifecycle`` holds the whole pass; each step that runs is a child run of
kind ``lifecycle.<stage>`` that records the files it read (inputs) and wrote (outputs), and links the
library's own runs inside it (finetune, eval, ppo, optimize, ...) as its children. A step whose cache
key (:func:`genlab.pipeline.workspace.cache_key`) matches the last finished attempt and whose outputs
are intact is reused: the lifecycle run links the earlier step run instead of starting a new one. So
after a crash or Ctrl-C, running the same command again resumes at the step that stopped -- and an
adaptation that left checkpoints resumes inside its training (see :mod:`genlab.pipeline.stages.adapt`).

A failing step marks its run failed with the reason, marks the lifecycle failed, leaves the later
steps unrun and raises :class:`LifecycleStepError`: one sentence, naming the step and the cause. The
manifest (``lifecycle.json``, an output of the lifecycle run) lists every step's status, run and
state, and the HTML report (:mod:`genlab.pipeline.report`) is written in either case.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genlab.atomic import atomic_write_json, atomic_write_text
from genlab.errors import GenlabError
from genlab.lineage import LineageStore, Run, record_run
from genlab.pipeline.recipe import LifecycleRecipe
from genlab.pipeline.stages import steps_for
from genlab.pipeline.step import Stage, StepContext, always_runs
from genlab.pipeline.workspace import StepState, Workspace, cache_key, outputs_intact
from genlab.tracking.live import live_tracking, nested_run

MANIFEST_KIND = "lifecycle-manifest"
# on_event(event, step, detail): event is "start", "reused", "done", "failed" or "progress"
EventHandler = Callable[[str, str, str], None]


class LifecycleStepError(GenlabError):
    """A step failed; the message names it and the cause, and how to resume."""

    def __init__(self, message: str, exit_code: int = 1, report: str | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.report = report


@dataclass
class StepReport:
    step: str
    stage: str
    status: str  # "ran", "reused", "failed" or "not run"
    run_id: str | None = None
    seconds: float = 0.0
    error: str | None = None
    state: dict[str, Any] | None = None  # the StepState, for ran and reused steps


@dataclass
class LifecycleResult:
    run_id: str
    recipe: str
    status: str
    workspace: str
    steps: list[StepReport] = field(default_factory=list)
    report: str | None = None

    def step(self, name: str) -> StepReport:
        return next(s for s in self.steps if s.step == name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_lifecycle(
    recipe: LifecycleRecipe,
    *,
    recipe_dir: Path | None = None,
    source: str = "",
    overrides: Iterable[str] = (),
    force: bool = False,
    on_event: EventHandler | None = None,
    show_progress: bool = False,
    trainer_callbacks: Sequence[Any] = (),
    write_html: bool = True,
) -> LifecycleResult:
    """Run every step of ``recipe`` (reusing finished ones unless ``force``); see the module docstring."""
    event = on_event or (lambda kind, step, detail: None)
    workspace = Workspace(recipe.name)
    steps = steps_for(recipe)
    config = {
        "recipe": recipe.model_dump(mode="json", by_alias=False), "source": source, "overrides": list(overrides),
        "workspace": str(workspace.root), "steps": [name for name, _ in steps], "force": force,
    }  # fmt: skip
    reports = [StepReport(name, stage.kind, "not run") for name, stage in steps]
    result = LifecycleResult("", recipe.name, "running", str(workspace.root), reports)
    with workspace.locked(), LineageStore() as store, live_tracking(recipe.tracking, store):  # MLflow, if the recipe says
        try:
            with record_run("lifecycle", config, store=store) as lifecycle, nested_run(lifecycle.id):
                result.run_id = lifecycle.id
                try:
                    pass_ = _Pass(recipe, recipe_dir, workspace, store, lifecycle, event, force, show_progress, trainer_callbacks)
                    for (name, stage), report in zip(steps, reports, strict=True):
                        pass_.run_step(name, stage, report)
                    _log_outcome(lifecycle, reports)
                finally:
                    _write_manifest(lifecycle, result)
        except BaseException as error:
            result.status = "failed"
            if write_html and result.run_id and isinstance(error, (LifecycleStepError, KeyboardInterrupt)):
                report = _report_or_none(result.run_id, store)  # what ran, and where it stopped
                if isinstance(error, LifecycleStepError):
                    error.report = report
            raise
        result.status = "completed"
        if write_html:
            result.report = _report_or_none(result.run_id, store)
    return result


class _Pass:
    """One pass over the steps: the state of each step so far, and how to run or reuse the next."""

    def __init__(
        self, recipe: LifecycleRecipe, recipe_dir: Path | None, workspace: Workspace, store: LineageStore,
        lifecycle: Run, event: EventHandler, force: bool, show_progress: bool, trainer_callbacks: Sequence[Any],
    ) -> None:  # fmt: skip
        self.recipe, self.recipe_dir, self.workspace, self.store = recipe, recipe_dir, workspace, store
        self.lifecycle, self.event, self.force = lifecycle, event, force
        self.show_progress, self.trainer_callbacks = show_progress, trainer_callbacks
        self.states: dict[str, StepState] = {}

    def run_step(self, step: str, stage: Stage, report: StepReport) -> None:
        ctx = StepContext(
            self.recipe, self.recipe_dir, step, self.workspace.root / step, self.states,
            progress=lambda message: self.event("progress", step, message), show_progress=self.show_progress,
            trainer_callbacks=self.trainer_callbacks,
        )  # fmt: skip
        try:
            inputs = stage.inputs(ctx)
            hashes = {name: self.store.content_hash(file.path) for name, file in inputs.items()}
            ctx.key = cache_key(step, stage.settings(ctx), hashes)
        except Exception as error:  # noqa: BLE001 - reported as this step's failure, in one sentence
            self._fail(step, report, error, None, 0.0)
        previous = self.workspace.read_state(step)
        reusable = previous is not None and previous.key == ctx.key and not self.force and not always_runs(stage, ctx)
        if reusable and outputs_intact(previous, self.store.content_hash):
            self.store.link(("run", self.lifecycle.id), ("run", previous.run_id), "child")
            self.states[step] = previous
            report.status, report.run_id, report.seconds, report.state = "reused", previous.run_id, previous.seconds, previous.to_dict()
            self.event("reused", step, previous.run_id)
            return
        ctx.folder = self.workspace.clear_step(step)
        self.event("start", step, "")
        start = time.perf_counter()
        run_id = None
        try:
            settings = {"lifecycle": self.lifecycle.id, "step": step, "key": ctx.key, "settings": stage.settings(ctx)}
            with record_run(f"lifecycle.{stage.kind}", settings, store=self.store) as run, nested_run(run.id):
                run_id = run.id
                self.lifecycle.add_child(run)
                state = self._execute(stage, ctx, run, inputs)
                state.seconds = time.perf_counter() - start
                run.log_metric("seconds", state.seconds)
            self.workspace.write_state(state)
        except KeyboardInterrupt:
            report.status, report.run_id, report.error = "failed", run_id, "interrupted by the user"
            raise
        except Exception as error:  # noqa: BLE001 - every failure stops the pipeline with one sentence
            self._fail(step, report, error, run_id, time.perf_counter() - start)
        self.states[step] = state
        report.status, report.run_id, report.seconds, report.state = "ran", state.run_id, state.seconds, state.to_dict()
        self.event("done", step, f"{state.seconds:.1f} s")

    def _execute(self, stage: Stage, ctx: StepContext, run: Run, inputs: dict[str, Any]) -> StepState:
        recorded_inputs = {}
        for name, file in inputs.items():
            artifact = run.use(file.path, file.kind, {"label": file.label, "step": ctx.step})
            recorded_inputs[name] = {"path": str(file.path), "kind": file.kind, "label": file.label, "sha256": artifact.sha256}
        outcome = stage.run(ctx, run)
        outputs = {}
        for name, file in outcome.outputs.items():
            artifact = run.log_artifact(file.path, file.kind, {"label": file.label, "step": ctx.step})
            outputs[name] = {"path": str(file.path), "kind": file.kind, "label": file.label, "sha256": artifact.sha256}
        for sub_run in outcome.sub_runs.values():
            self.store.link(("run", run.id), ("run", sub_run), "child")
        return StepState(ctx.step, ctx.key, run.id, recorded_inputs, outputs, outcome.summary, outcome.sub_runs)

    def _fail(self, step: str, report: StepReport, error: Exception, run_id: str | None, seconds: float) -> None:
        if getattr(error, "exit_code", None) == 130:  # Ctrl-C inside training: the trainer kept a checkpoint
            reason = "interrupted by the user; the training checkpoint is kept"
        elif isinstance(error, GenlabError):
            reason = str(error).strip()
        else:  # a bug: keep its traceback beside the step for whoever fixes it
            trace = atomic_write_text(self.workspace.step_dir(step) / "error.txt", traceback.format_exc())
            reason = f"{type(error).__name__}: {str(error).strip()} (traceback in {trace})"
        reason = " ".join(reason.split())  # one line
        report.status, report.run_id, report.seconds, report.error = "failed", run_id, seconds, reason
        self.event("failed", step, reason)
        where = f" (run {run_id}, marked failed)" if run_id else ""
        raise LifecycleStepError(
            f"step {step} failed{where}: {reason.rstrip('.')}. Fix the cause and run the same command again: "
            "the finished steps are reused.",
            exit_code=getattr(error, "exit_code", 1),
        ) from error


def _log_outcome(lifecycle: Run, reports: list[StepReport]) -> None:
    lifecycle.log_metric("steps_ran", sum(r.status == "ran" for r in reports))
    lifecycle.log_metric("steps_reused", sum(r.status == "reused" for r in reports))
    evaluate = next((r for r in reports if r.stage == "evaluate" and r.state), None)
    if evaluate is not None and evaluate.state is not None:
        summary = evaluate.state["summary"]
        if summary.get("best_score") is not None:
            lifecycle.log_metric(f"best_{summary['metric']}", summary["best_score"])


def _write_manifest(lifecycle: Run, result: LifecycleResult) -> None:
    manifest = {"lifecycle_run": lifecycle.id, **{k: v for k, v in result.to_dict().items() if k not in ("run_id", "status", "report")}}
    path = atomic_write_json(lifecycle.dir / "lifecycle.json", manifest)
    lifecycle.log_artifact(path, MANIFEST_KIND)


def _report_or_none(run_id: str, store: LineageStore) -> str | None:
    """Write the HTML report; a report that cannot be drawn must not hide what the run itself did."""
    from genlab.pipeline.report import write_report

    try:
        return str(write_report(run_id, store=store))
    except Exception as error:  # noqa: BLE001
        import sys

        print(f"warning: the lifecycle report could not be written: {type(error).__name__}: {error}", file=sys.stderr)
        return None
