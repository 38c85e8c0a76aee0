"""QLoRA fine-tuning (``method: qlora``): LoRA on a 4-bit base; needs CUDA and bitsandbytes (:mod:`.adapter`)."""

from genlab.tuning.finetune_method import finetune_method
from genlab.tuning.qlora.adapter import check_available, prepare

METHOD = finetune_method(
    "qlora", "QLoRA: LoRA on a base quantised to 4-bit NF4 (bitsandbytes, CUDA only).",
    lambda loaded, recipe: prepare(loaded, recipe.lora), check_available=check_available,
    memory_mode="qlora",
)  # fmt: skip
