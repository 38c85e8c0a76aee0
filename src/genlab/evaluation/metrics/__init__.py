"""Metrics computed with the field's reference libraries (rouge-score, sacrebleu), never a hub script."""

from genlab.evaluation.metrics.rouge import ROUGE_TYPES, rouge, rouge_per_example

__all__ = ["ROUGE_TYPES", "rouge", "rouge_per_example"]
