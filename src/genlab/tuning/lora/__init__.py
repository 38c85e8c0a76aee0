"""LoRA fine-tuning (``method: lora``): low-rank adapters on the chosen linear layers (:mod:`.adapter`)."""

from genlab.tuning.finetune_method import finetune_method
from genlab.tuning.lora.adapter import prepare

METHOD = finetune_method(
    "lora", "LoRA: low-rank adapters on the chosen linear layers (peft), the base frozen.",
    lambda loaded, recipe: prepare(loaded, recipe.lora),
    memory_mode="lora",
)  # fmt: skip
