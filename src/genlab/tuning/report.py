"""The HTML report of a fine-tuning run: parameters, loss curves (matplotlib), scores before and after."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from genlab.atomic import atomic_write_text
from genlab.tuning.recipe import FinetuneRecipe

TEMPLATE = Path(__file__).with_name("templates") / "finetune.html.jinja"


def loss_curves_png(history: list[dict[str, float]]) -> str:
    """Training and validation loss against the step, as a base64 PNG (empty with no losses)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    validation = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if not train and not validation:
        return ""
    figure, axes = plt.subplots(figsize=(7, 3.6), dpi=110)
    if train:
        axes.plot(*zip(*train, strict=True), label="training loss", linewidth=1.2)
    if validation:
        axes.plot(*zip(*validation, strict=True), "o-", label="validation loss", linewidth=1.5)
    axes.set_xlabel("step")
    axes.set_ylabel("cross-entropy (nats/token)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def write_report(run: Any, recipe: FinetuneRecipe, result: Any, baseline: Any | None) -> Path:
    import jinja2

    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string(TEMPLATE.read_text(encoding="utf-8"))
    tuned_scores = {k.removeprefix("val_"): v for k, v in result.metrics.items() if k.startswith("val_")}
    base_scores = {k: v for k, v in (baseline.metrics if baseline else {}).items() if k in tuned_scores}
    html = template.render(
        recipe=recipe, result=result, chart=loss_curves_png(result.loss_history),
        tuned_scores=tuned_scores, base_scores=base_scores,
        test_scores={k.removeprefix("test_"): v for k, v in result.metrics.items() if k.startswith("test_")},
    )  # fmt: skip
    path = atomic_write_text(run.dir / "report.html", html)
    run.log_artifact(path, "report", {"recipe": recipe.name})
    return path
