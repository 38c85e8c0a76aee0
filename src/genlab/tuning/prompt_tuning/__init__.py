"""Prompt tuning (``method: prompt_tuning``): trained soft-prompt vectors, the model frozen (:mod:`.soft_prompt`)."""

from genlab.tuning.finetune_method import finetune_method
from genlab.tuning.method_kind import FinetuneKind
from genlab.tuning.prompt_tuning.soft_prompt import prepare

METHOD = finetune_method(
    "prompt_tuning", "Prompt tuning: trained soft-prompt vectors before every input (peft), the model frozen.",
    lambda loaded, recipe: prepare(loaded, recipe.prompt_tuning),
    memory_mode="prompt-tuning",
    kind=FinetuneKind(changes_base_weights=False),
)  # fmt: skip
