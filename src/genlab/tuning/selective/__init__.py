"""Selective fine-tuning (``method: selective``): only the chosen layers train (:mod:`.layers`)."""

from genlab.tuning.finetune_method import finetune_method
from genlab.tuning.selective.layers import prepare

METHOD = finetune_method(
    "selective", "Selective fine-tuning: only the chosen transformer layers (and optionally embeddings/head) train.",
    lambda loaded, recipe: prepare(loaded, recipe.selective),
    memory_mode="train",
)  # fmt: skip
