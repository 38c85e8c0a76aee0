"""Continued pre-training (``method: continued_pretraining``): every weight trains on packed raw text.

The model is prepared as for full fine-tuning (:mod:`genlab.tuning.full.model`); the data side (packed
raw text, no instruction template) is :mod:`genlab.tuning.assemble`'s.
"""

from genlab.tuning.finetune_method import finetune_method
from genlab.tuning.full.model import prepare
from genlab.tuning.method_kind import FinetuneKind

METHOD = finetune_method(
    "continued_pretraining", "Continued pre-training: every weight trains on packed raw text (next-token loss).",
    lambda loaded, recipe: prepare(loaded),
    kind=FinetuneKind(raw_text=True),
    memory_mode="train",
)  # fmt: skip
