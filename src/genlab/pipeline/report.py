"""The lifecycle report: one self-contained HTML file per lifecycle run, built from the lineage store.

Everything comes from lineage: the lifecycle run and its manifest (an output artifact listing each
step's run and state), the step runs' inputs and outputs (the lineage graph), and the metrics the
library runs logged (loss and reward curves, scores). So ``genlab report RUN_ID`` redraws the same
page at any time. Charts are inline (PNG as base64, the graph as SVG), styles are inline, nothing is
fetched: the file opens anywhere. The page is a strict Jinja template in package data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genlab.atomic import atomic_write_text
from genlab.errors import GenlabError
from genlab.lineage import LineageStore
from genlab.pipeline.charts import GraphNode, curves_png, lineage_svg

TEMPLATE = Path(__file__).with_name("templates") / "lifecycle.html.jinja"
MANIFEST_KIND = "lifecycle-manifest"
GRAPH_SKIPS = ("selection", "scope", "comparison", "optimization-report", "report")  # bookkeeping, not lineage
EFFICIENCY = ("tokens_per_second", "latency_per_example_s")  # shown with the scores in the comparison table


@dataclass
class LifecycleView:
    run: dict[str, Any]  # the lifecycle run record
    steps: list[dict[str, Any]]  # step reports from the manifest
    states: dict[str, dict[str, Any]]  # step -> state, for steps that ran or were reused
    graph_svg: str = ""
    adapt: list[dict[str, Any]] = field(default_factory=list)
    align: list[dict[str, Any]] = field(default_factory=list)
    comparison: dict[str, Any] | None = None
    memory: list[dict[str, Any]] = field(default_factory=list)

    def summary(self, step: str) -> dict[str, Any] | None:
        state = self.states.get(step)
        return state["summary"] if state else None


def write_report(run_id: str, output: str | Path | None = None, *, store: LineageStore | None = None) -> Path:
    """Render the report of lifecycle run ``run_id`` to ``output`` (default: the run's folder) and record it."""
    from genlab.home import runs_dir

    own = store is None
    store = store or LineageStore()
    try:
        view = build_view(store, run_id)
        target = Path(output).expanduser() if output is not None else runs_dir() / view.run["id"] / "report.html"
        atomic_write_text(target, render(view))
        artifact = store.register_artifact(target, "report", {"label": "lifecycle report"})
        store.link(("run", view.run["id"]), ("artifact", artifact.id), "output")
        return target
    finally:
        if own:
            store.close()


def build_view(store: LineageStore, run_id: str) -> LifecycleView:
    run = store.get_run(run_id)
    if run.kind != "lifecycle":
        raise GenlabError(
            f"run {run.id} is a {run.kind} run; genlab report takes a lifecycle run (genlab runs list --kind lifecycle)."
        )
    manifests = [a for a in store.artifacts_of(run.id, "output") if a.kind == MANIFEST_KIND]
    if not manifests or not Path(manifests[-1].path).is_file():
        raise GenlabError(f"lifecycle run {run.id} has no manifest on disk, so its report cannot be drawn.")
    manifest = json.loads(Path(manifests[-1].path).read_text(encoding="utf-8"))
    steps = manifest["steps"]
    states = {s["step"]: s["state"] for s in steps if s.get("state")}
    view = LifecycleView(run=run.to_dict(), steps=steps, states=states)
    view.graph_svg = lineage_svg(*_graph(store, steps))
    view.adapt = [_adapt_section(store, s) for s in steps if s["stage"] == "adapt" and s.get("state")]
    view.align = [_align_section(store, s) for s in steps if s["stage"] == "align" and s.get("state")]
    view.comparison = _comparison(view)
    view.memory = _memory_rows(view)
    return view


def render(view: LifecycleView) -> str:
    import jinja2

    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string(TEMPLATE.read_text(encoding="utf-8"))
    recipe = view.run["config"].get("recipe", {})
    from markupsafe import Markup

    from genlab.evaluation.compare import paired_text
    from genlab.pipeline.recipe import lower_is_better

    return template.render(
        view=view, recipe=recipe, markup=Markup, lower_is_better=lower_is_better, size=format_gb, paired_text=paired_text
    )


def format_gb(value: float | None) -> str:
    """A memory size given in GB, in GB from 0.1 GB up and in MB below (a tiny model's estimate is not 0.00 GB)."""
    if value is None:
        return "not measured"
    return f"{value:.2f} GB" if value >= 0.1 else f"{value * 1000:.1f} MB"


# --- sections ------------------------------------------------------------------------------------------


def _graph(store: LineageStore, steps: list[dict[str, Any]]) -> tuple[list[GraphNode], list[tuple[str, str]]]:
    """Step runs and the artifacts they read and wrote, as recorded in lineage."""
    nodes: dict[str, GraphNode] = {}
    edges: list[tuple[str, str]] = []
    for step in steps:
        state = step.get("state")
        if not state:
            continue
        labels = {r["path"]: r["label"] for r in [*state["inputs"].values(), *state["outputs"].values()] if r.get("label")}
        run_id = state["run_id"]
        nodes[run_id] = GraphNode(run_id, step["step"], "run")
        for relation in ("input", "output"):
            for artifact in store.artifacts_of(run_id, relation):
                if artifact.kind in GRAPH_SKIPS:
                    continue
                label = labels.get(artifact.path) or f"{artifact.kind}: {Path(artifact.path).name}"
                nodes.setdefault(artifact.id, GraphNode(artifact.id, label, artifact.kind))
                edges.append((artifact.id, run_id) if relation == "input" else (run_id, artifact.id))
    return list(nodes.values()), edges


def _history(store: LineageStore, run_id: str, name: str) -> list[tuple[float, float]]:
    return [(float(step), value) for step, value in store.metric_history(run_id, name) if step is not None]


def _adapt_section(store: LineageStore, step: dict[str, Any]) -> dict[str, Any]:
    from genlab.tuning.report import loss_curves_png

    state = step["state"]
    finetune_run = state["sub_runs"].get("finetune")
    history: list[dict[str, float]] = []
    if finetune_run:
        history += [{"step": s, "loss": v} for s, v in _history(store, finetune_run, "train_loss")]
        history += [{"step": s, "eval_loss": v} for s, v in _history(store, finetune_run, "eval_loss")]
    return {"step": step["step"], "summary": state["summary"], "run": finetune_run, "chart": loss_curves_png(history)}


def _align_section(store: LineageStore, step: dict[str, Any]) -> dict[str, Any]:
    """The alignment's table and every per-step metric it logged (reward, KL, losses) as curves."""
    state = step["state"]
    run_id = next(iter(state["sub_runs"].values()), None)
    series = {}
    if run_id:
        for name in store.metrics(run_id):
            points = _history(store, run_id, name)
            if len(points) >= 2:
                series[name] = points
    preferred = [n for n in ("reward", "kl", "loss", "entropy", "value_loss") if n in series]
    ordered = {name: series[name] for name in preferred + [n for n in series if n not in preferred]}
    return {"step": step["step"], "summary": state["summary"], "run": run_id, "chart": curves_png(dict(list(ordered.items())[:4]))}


def _comparison(view: LifecycleView) -> dict[str, Any] | None:
    """The evaluate step's comparison: a table row per score with each candidate and its change over the base."""
    from genlab.evaluation.compare import Comparison, bar_chart_png, is_score

    summary = view.summary("evaluate")
    state = view.states.get("evaluate")
    if summary is None or state is None:
        return None
    data = json.loads(Path(state["outputs"]["comparison"]["path"]).read_text(encoding="utf-8"))
    names = data.pop("candidates")
    data.pop("split", None)  # the rows' split, shown from the summary
    for run, name in zip(data["runs"], names, strict=True):
        run.update(model=name, adapter=None, shots=None)  # the chart's legend names the candidates
    comparison = Comparison(**data)
    shown = [m for m in comparison.metrics if is_score(m) or m in EFFICIENCY]
    rows = [
        {"metric": m, "score": is_score(m), "values": comparison.values[m], "changes": comparison.improvements[m],
         "of_record": m == summary["metric"], "intervals": comparison.intervals.get(m)}
        for m in shown
    ]  # fmt: skip
    return {"names": names, "rows": rows, "chart": bar_chart_png(comparison), "samples": comparison.samples, **summary}


MEMORY_BAND = 0.25  # an estimate within ±25% of the measured peak is in the band (issue 23)


def _memory_rows(view: LifecycleView) -> list[dict[str, Any]]:
    """Each memory estimate beside the peak measured when the same work ran (GB)."""
    selection = view.summary("select")
    if not selection:
        return []
    estimates, rows = selection["estimates"], []
    for section in view.adapt:
        estimate = estimates.get(section["step"])
        measured = section["summary"]["metrics"].get("peak_memory_mb")
        if estimate:
            rows.append({
                "what": f"training {section['summary']['candidate']} ({section['summary']['method']})",
                **_beside(_process_gb(estimate, "train_total_gb"), mib_to_gb(measured)),
                "how": "peak resident memory of the genlab process while it trained (with the interpreter and libraries)",
            })  # fmt: skip
    optimise = view.summary("optimise")
    if "infer" in estimates:
        measured = optimise["report"]["original"]["peak_memory_mb"] if optimise and optimise["measured"] else None
        rows.append({
            "what": "serving the chosen candidate (fp32)",
            **_beside(_process_gb(estimates["infer"], "infer_total_gb"), mib_to_gb(measured)),
            "how": "peak resident memory of a fresh process that loaded it and generated (optimise step)",
        })  # fmt: skip
    return rows


def _process_gb(estimate: dict[str, Any], older_key: str) -> float:
    """The estimate of the whole process (work + interpreter and libraries); runs recorded before it had one: ``older_key``."""
    return estimate.get("process_peak_gb") or estimate[older_key]


def _beside(estimate_gb: float, measured_gb: float | None) -> dict[str, Any]:
    """An estimate, the measured peak, their ratio, and whether it falls outside ±``MEMORY_BAND``."""
    ratio = estimate_gb / measured_gb if measured_gb else None
    outside = ratio is not None and abs(ratio - 1) > MEMORY_BAND
    return {"estimate_gb": estimate_gb, "measured_gb": measured_gb, "ratio": ratio, "outside_band": outside}


def mib_to_gb(mib: float | None) -> float | None:
    """Peak memory as measured (MiB: resident kilobytes / 1024) in the estimates' unit (GB = 1e9 bytes)."""
    return mib * 1024 * 1024 / 1e9 if mib else None
