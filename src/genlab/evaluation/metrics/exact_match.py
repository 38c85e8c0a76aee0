"""Exact match with SQuAD's answer normalisation (Rajpurkar et al., 2016), and label accuracy.

The normalisation is the one in SQuAD v1.1's official ``evaluate-v1.1.py`` (``normalize_answer``),
applied in its order: lower-case, drop ASCII punctuation (``string.punctuation``), drop the articles
``a``/``an``/``the`` as whole words, collapse runs of whitespace. So ``"The  Eiffel Tower!"`` matches
``"eiffel tower"``. With several references, a prediction matches if it equals any of them::

    exact_match = (1 / N) * sum_i max_{r in refs_i} [norm(pred_i) == norm(r)]
    accuracy    = (1 / N) * sum_i [predicted_i == gold_i]
"""

from __future__ import annotations

import re
import string
from collections.abc import Hashable, Sequence

from genlab.errors import InvalidValueError

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's ``normalize_answer``: lower, no punctuation, no articles, single spaces."""
    text = text.lower().translate(_PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _check_paired(predicted: Sequence, gold: Sequence, *, gold_name: str, metric: str) -> None:
    if len(predicted) != len(gold):
        raise InvalidValueError(f"{len(predicted)} predictions but {len(gold)} {gold_name}")
    if not predicted:
        raise InvalidValueError(f"{metric} of an empty set is undefined")


def exact_match(
    predictions: Sequence[str], references: Sequence[str | Sequence[str]], *, normalize: bool = True
) -> dict[str, float]:
    """Fraction of predictions equal to one of their references (SQuAD-normalised unless ``normalize=False``)."""
    _check_paired(predictions, references, gold_name="references", metric="exact match")
    norm = normalize_answer if normalize else (lambda text: text)
    hits = 0
    for prediction, refs in zip(predictions, references, strict=True):
        candidates = [refs] if isinstance(refs, str) else list(refs)
        hits += norm(prediction) in {norm(reference) for reference in candidates}
    return {"exact_match": hits / len(predictions)}


def accuracy(predicted_labels: Sequence[Hashable], gold_labels: Sequence[Hashable]) -> dict[str, float]:
    """Fraction of predicted labels equal to the gold labels (compared as they are, no normalisation)."""
    _check_paired(predicted_labels, gold_labels, gold_name="gold labels", metric="accuracy")
    correct = sum(p == g for p, g in zip(predicted_labels, gold_labels, strict=True))
    return {"accuracy": correct / len(predicted_labels)}
