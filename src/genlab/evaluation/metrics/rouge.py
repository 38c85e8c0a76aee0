"""ROUGE (Lin, 2004) with Google's rouge-score package, the reference Python port of ROUGE-1.5.5.

ROUGE-N is the F-measure of n-gram overlap between a prediction and a reference; ROUGE-L uses the
longest common subsequence, and ROUGE-Lsum the summary-level LCS over sentences (newline-split).
Tokens are lower-cased and Porter-stemmed (``use_stemmer=True``, as the course and Hugging Face's
``evaluate`` wrapper use). With several references for one prediction, each score is the best over
the references (as DialogSum's test split, which has three, is usually scored). The corpus score is
the mean of the per-example F-measures.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


@functools.cache
def _scorer():  # noqa: ANN202 - rouge_scorer.RougeScorer
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def _lsum_ready(text: str) -> str:
    # rougeLsum splits sentences on newlines; a one-line summary is one sentence.
    return text.strip()


def rouge_per_example(prediction: str, references: str | Sequence[str]) -> dict[str, float]:
    refs = [references] if isinstance(references, str) else list(references)
    if not refs:
        raise ValueError("ROUGE needs at least one reference")
    best = {name: 0.0 for name in ROUGE_TYPES}
    for reference in refs:
        scores = _scorer().score(_lsum_ready(reference), _lsum_ready(prediction))
        for name in ROUGE_TYPES:
            best[name] = max(best[name], scores[name].fmeasure)
    return best


def rouge(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> dict[str, float]:
    """Mean ROUGE-1/2/L/Lsum F-measures over a corpus (one or several references per prediction)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("ROUGE of an empty corpus is undefined")
    totals = {name: 0.0 for name in ROUGE_TYPES}
    for prediction, refs in zip(predictions, references, strict=True):
        for name, value in rouge_per_example(prediction, refs).items():
            totals[name] += value
    return {name: total / len(predictions) for name, total in totals.items()}
