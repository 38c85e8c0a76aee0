"""`genlab compare`: runs side by side, with the absolute improvement over the first run.

The course's second lab reports "absolute percentage improvement of the PEFT model over the
original model" per ROUGE score: ``(score_run - score_first) * 100`` percentage points. Scores on a
0-1 scale (ROUGE, BLEU, chrF, accuracy, toxicity, ECE, ...) are compared that way; other figures
(tokens/s, seconds) by their plain difference. An HTML report (self-contained: the chart is an
inline PNG) shows a bar chart and sample predictions side by side with the references.

Every score of a run carries its 95% bootstrap interval (the run's ``intervals.json``, or its
predictions' per-row scores), and each run after the first gets, on the same rows, the paired
bootstrap interval of its difference from the first (:mod:`genlab.evaluation.paired`), marked "not
distinguishable from noise" when it spans zero; runs on different rows get one sentence instead.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genlab.atomic import atomic_write_text
from genlab.errors import GenlabError
from genlab.evaluation.paired import NOISE, different_rows, paired_differences
from genlab.evaluation.row_scores import mean_intervals
from genlab.home import genlab_home
from genlab.lineage import LineageStore, record_run

SCORE_PREFIXES = ("rouge", "bleu", "chrf", "acc", "f1", "exact_match", "toxic", "ece", "robustness")
NOT_SCORES = ("bleu_brevity_penalty", "bleu_length_ratio")  # factors and ratios, compared as plain numbers
TEMPLATE = Path(__file__).with_name("templates") / "compare.html.jinja"


def is_score(metric: str) -> bool:
    """A 0-1 score, compared in percentage points (lm-eval's ``TASK/acc`` too; its ``_stderr`` figures are not)."""
    name = metric.rsplit("/", 1)[-1].split("[", 1)[0]
    return name.startswith(SCORE_PREFIXES) and name not in NOT_SCORES and not name.endswith("_stderr")


@dataclass
class Comparison:
    runs: list[dict[str, Any]]  # id, kind, model, adapter, data, n
    metrics: list[str]
    values: dict[str, list[float | None]]  # metric -> value per run
    improvements: dict[str, list[float | None]]  # metric -> change over the first run (pp for scores)
    samples: list[dict[str, Any]]  # id, input, reference, predictions (one per run)
    intervals: dict[str, list[list[float] | None]] = field(default_factory=dict)  # metric -> [low, high] per run
    paired: dict[str, list[dict[str, Any] | None]] = field(default_factory=dict)  # metric -> difference from run 1
    paired_notes: list[str | None] = field(default_factory=list)  # per run: why it has no paired figures
    report: str = ""
    run_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_runs(run_ids: list[str], *, samples: int = 5, report: bool = True) -> Comparison:
    if len(run_ids) < (2 if report else 1):  # the lifecycle tabulates a lone base run too
        raise GenlabError("compare needs at least two run ids (the first is the baseline).")
    with LineageStore() as store:
        records = [store.get_run(run_id) for run_id in run_ids]
        metric_sets = [store.metrics(record.id) for record in records]
        prediction_files = [_predictions_file(store, record.id) for record in records]
        interval_files = [_artifact_file(store, record.id, "intervals") for record in records]
    runs = [
        {
            "id": r.id, "kind": r.kind, "model": r.config.get("model"), "adapter": r.config.get("adapter"),
            "data": r.config.get("data"), "shots": r.config.get("shots"), "n": None,
        }  # fmt: skip
        for r in records
    ]
    names = sorted({name for metrics in metric_sets for name in metrics}, key=lambda m: (not is_score(m), m))
    values = {name: [metrics.get(name) for metrics in metric_sets] for name in names}
    improvements = {name: [_change(name, values[name][0], v) for v in values[name]] for name in names}
    predictions = [_read_predictions(path) for path in prediction_files]
    for run, rows in zip(runs, predictions, strict=True):
        run["n"] = len(rows) if rows else None
    comparison = Comparison(runs, names, values, improvements, _side_by_side(predictions, samples))
    _add_intervals(comparison, predictions, interval_files)
    if report:
        with record_run("compare", {"runs": run_ids}) as run:
            for path in prediction_files:
                if path is not None:
                    run.use(path, "predictions")
            target = genlab_home() / "reports" / f"{run.id}.html"
            atomic_write_text(target, render_report(comparison))
            run.log_artifact(target, "report")
            comparison.report, comparison.run_id = str(target), run.id
    return comparison


def _change(metric: str, base: float | None, value: float | None) -> float | None:
    if base is None or value is None:
        return None
    return (value - base) * 100 if is_score(metric) else value - base


def _add_intervals(comparison: Comparison, predictions: list[list[dict[str, Any]]], interval_files: list[Path | None]) -> None:
    """Each run's interval per metric, and each later run's paired difference from the first (or why not)."""
    per_run = []
    for rows, path in zip(predictions, interval_files, strict=True):
        recorded = json.loads(path.read_text(encoding="utf-8"))["intervals"] if path is not None else {}
        per_run.append(recorded or {name: i.to_list() for name, i in mean_intervals([r.get("scores") or {} for r in rows]).items()})
    comparison.intervals = {name: [bounds.get(name) for bounds in per_run] for name in comparison.metrics}
    comparison.paired = {name: [None] * len(predictions) for name in comparison.metrics}
    comparison.paired_notes = [None] * len(predictions)
    for index in range(1, len(predictions)):
        note = different_rows(predictions[0], predictions[index])
        if note is not None:
            comparison.paired_notes[index] = note
            continue
        for name, difference in paired_differences(predictions[0], predictions[index]).items():
            if name in comparison.paired:
                comparison.paired[name][index] = difference.to_dict()


def paired_text(metric: str, paired: dict[str, Any]) -> str:
    """``+2.00 pp [-1.10, +5.20], not distinguishable from noise`` (points for 0-1 scores)."""
    scale, unit = (100.0, " pp") if is_score(metric) else (1.0, "")
    text = f"{paired['difference'] * scale:+.2f}{unit} [{paired['low'] * scale:+.2f}, {paired['high'] * scale:+.2f}]"
    return f"{text}, {NOISE}" if paired["verdict"] == NOISE else f"{text}, {paired['verdict']}"


def _predictions_file(store: LineageStore, run_id: str) -> Path | None:
    return _artifact_file(store, run_id, "predictions")


def _artifact_file(store: LineageStore, run_id: str, kind: str) -> Path | None:
    outputs = [a for a in store.artifacts_of(run_id, "output") if a.kind == kind]
    return Path(outputs[0].path) if outputs and Path(outputs[0].path).is_file() else None


def _read_predictions(path: Path | None) -> list[dict[str, Any]]:
    if path is None:
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _side_by_side(predictions: list[list[dict[str, Any]]], count: int) -> list[dict[str, Any]]:
    """The first ``count`` examples every run predicted, each with every run's prediction."""
    by_id = [{row.get("id"): row for row in rows} for rows in predictions]
    if not by_id or not all(by_id):
        return []
    shared = [key for key in by_id[0] if all(key in rows for rows in by_id[1:])][:count]
    return [
        {
            "id": key,
            "input": by_id[0][key].get("input", ""),
            "reference": by_id[0][key].get("reference", ""),
            "predictions": [rows[key].get("prediction", "") for rows in by_id],
        }
        for key in shared
    ]


def bar_chart_png(comparison: Comparison) -> str:
    """Grouped bars of the 0-1 scores per run, as a base64 PNG (empty if there are none)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = [m for m in comparison.metrics if is_score(m) and all(v is not None for v in comparison.values[m])]
    if not scores:
        return ""
    width = 0.8 / len(comparison.runs)
    figure, axes = plt.subplots(figsize=(max(6, 1.2 * len(scores) + 2), 3.6), dpi=110)
    for index, run in enumerate(comparison.runs):
        offsets = [i + index * width - 0.4 + width / 2 for i in range(len(scores))]
        axes.bar(offsets, [comparison.values[m][index] for m in scores], width, label=f"{index + 1}. {run_label(run)}")
    axes.set_xticks(range(len(scores)), scores, rotation=20)
    axes.set_ylim(0, 1)
    axes.set_ylabel("score (0-1)")
    axes.legend(fontsize=8)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def run_label(run: dict[str, Any]) -> str:
    parts = [str(run.get("model") or run["kind"])]
    if run.get("adapter"):
        parts.append(f"+ {Path(str(run['adapter'])).name}")
    if run.get("shots"):
        parts.append(f"{run['shots']}-shot")
    return " ".join(parts)


def render_report(comparison: Comparison) -> str:
    import jinja2

    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string(TEMPLATE.read_text(encoding="utf-8"))
    return template.render(
        comparison=comparison,
        labels=[f"{i + 1}. {run_label(run)}" for i, run in enumerate(comparison.runs)],
        chart=bar_chart_png(comparison),
        is_score=is_score,
        paired_text=paired_text,
    )
