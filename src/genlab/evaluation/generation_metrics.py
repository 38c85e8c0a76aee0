"""The metrics `genlab eval` can compute on generated text, by name: a small registry, one line each.

Each entry takes (predictions, references) and returns a flat dict of named scores. The metric
modules do the work (:mod:`genlab.evaluation.metrics`); this only maps the names users type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from genlab.errors import InvalidValueError

References = Sequence[str | Sequence[str]]
MetricFn = Callable[[Sequence[str], References, dict[str, Any]], dict[str, float]]


def _rouge(predictions: Sequence[str], references: References, options: dict[str, Any]) -> dict[str, float]:
    from genlab.evaluation.metrics import rouge

    return rouge(predictions, references)


def _bleu(predictions: Sequence[str], references: References, options: dict[str, Any]) -> dict[str, float]:
    from genlab.evaluation.metrics import bleu, chrf

    return {**bleu(predictions, references), **chrf(predictions, references)}


def _toxicity(predictions: Sequence[str], references: References, options: dict[str, Any]) -> dict[str, float]:
    from genlab.evaluation.metrics import load_toxicity_scorer, toxicity

    scorer = load_toxicity_scorer(options.get("toxicity_model") or "profanity-check", options.get("toxic_label"))
    return toxicity(predictions, scorer)


def _exact_match(predictions: Sequence[str], references: References, options: dict[str, Any]) -> dict[str, float]:
    from genlab.evaluation.metrics import exact_match

    return exact_match(predictions, references)


def _length(predictions: Sequence[str], references: References, options: dict[str, Any]) -> dict[str, float]:
    from genlab.evaluation.metrics import length_stats

    return length_stats(predictions)


GENERATION_METRICS: dict[str, MetricFn] = {
    "rouge": _rouge,
    "bleu": _bleu,  # with chrF
    "toxicity": _toxicity,
    "exact_match": _exact_match,
    "length": _length,
}


def parse_metric_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in GENERATION_METRICS]
    if not names or unknown:
        shown = unknown[0] if unknown else text
        raise InvalidValueError(
            f"metrics={shown!r} is not allowed: choose from {', '.join(GENERATION_METRICS)} (comma-separated)."
        )
    return names


def score_generations(
    names: Sequence[str], predictions: Sequence[str], references: References, options: dict[str, Any] | None = None
) -> dict[str, float]:
    scores: dict[str, float] = {}
    for name in names:
        scores.update(GENERATION_METRICS[name](predictions, references, options or {}))
    return scores
