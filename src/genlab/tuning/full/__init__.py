"""Full fine-tuning (``method: full``): every weight trains (:mod:`.model`)."""

from genlab.tuning.finetune_method import finetune_method
from genlab.tuning.full.model import prepare

METHOD = finetune_method(
    "full", "Full fine-tuning: every weight trains; saves a whole model.", lambda loaded, recipe: prepare(loaded),
    memory_mode="train",
)
