"""Continued pre-training (``method: continued_pretraining``): every weight trains on packed raw text.

The model is prepared as for full fine-tuning (:mod:`genlab.tuning.full.model`); the data side (packed
raw text, no instruction template) is :mod:`genlab.tuning.assemble`'s.
"""

from genlab.tuning.finetune_method import finetune_method
from genlab.tuning.full.model import prepare

METHOD = finetune_method(
    "continued_pretraining", "Continued pre-training: every weight trains on packed raw text (next-token loss).",
    lambda loaded, recipe: prepare(loaded),
    memory_mode="train",
)  # fmt: skip
