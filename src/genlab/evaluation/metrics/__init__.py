"""Metrics computed with the field's reference libraries (rouge-score, sacrebleu), never a hub script."""

from genlab.evaluation.metrics.bleu import bleu, chrf
from genlab.evaluation.metrics.exact_match import accuracy, exact_match, normalize_answer
from genlab.evaluation.metrics.lengths import length_stats
from genlab.evaluation.metrics.perplexity import perplexity
from genlab.evaluation.metrics.rouge import ROUGE_TYPES, rouge, rouge_per_example
from genlab.evaluation.metrics.toxicity import (
    HFClassifierScorer,
    ProfanityCheckScorer,
    ToxicityScorer,
    load_toxicity_scorer,
    toxicity,
)

__all__ = [
    "ROUGE_TYPES",
    "HFClassifierScorer",
    "ProfanityCheckScorer",
    "ToxicityScorer",
    "accuracy",
    "bleu",
    "chrf",
    "exact_match",
    "length_stats",
    "load_toxicity_scorer",
    "normalize_answer",
    "perplexity",
    "rouge",
    "rouge_per_example",
    "toxicity",
]
