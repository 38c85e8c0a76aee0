"""Fine-tuning methods, one module each: each turns a loaded model into the model to train.

``prepare_model(loaded, recipe)`` dispatches on ``recipe.method``; the trainer does the rest the same
way for every method.
"""

from __future__ import annotations

import warnings
from typing import Any

from genlab.models.load import LoadedModel
from genlab.tuning.recipe import FinetuneRecipe

# peft still reads a transformers attribute deprecated in 5.x; the warning is theirs and says nothing to users.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def prepare_model(loaded: LoadedModel, recipe: FinetuneRecipe) -> Any:
    """The model whose trainable parameters the trainer updates (a peft model for adapter methods)."""
    from genlab.tuning.methods import full, lora, prompt_tuning, qlora, selective

    method = recipe.method
    if method in ("full", "continued_pretraining"):
        return full.prepare(loaded)
    if method == "lora":
        return lora.prepare(loaded, recipe.lora)
    if method == "qlora":
        return qlora.prepare(loaded, recipe.lora)
    if method == "prompt_tuning":
        return prompt_tuning.prepare(loaded, recipe.prompt_tuning)
    if method == "selective":
        return selective.prepare(loaded, recipe.selective)
    raise AssertionError(f"unhandled method {method!r}")  # the recipe schema allows no other value


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts; a tied weight counts once."""
    seen: set[int] = set()
    trainable = total = 0
    for parameter in model.parameters():
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        total += parameter.numel()
        if parameter.requires_grad:
            trainable += parameter.numel()
    return trainable, total
