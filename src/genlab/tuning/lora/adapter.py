"""LoRA (Hu et al., 2021) through peft: low-rank updates on chosen linear layers, the base frozen.

``target_modules: attention`` picks the attention projections of the model's architecture (the
original paper's choice); ``all-linear`` every linear layer but the output head (peft's own
keyword, the QLoRA paper's choice); or a list of module names.
"""

from __future__ import annotations

from typing import Any

from genlab.errors import InvalidValueError
from genlab.models.load import LoadedModel
from genlab.tuning.recipe import LoraConfig

# Attention projection names per architecture family (config.model_type).
ATTENTION_MODULES: dict[str, list[str]] = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gemma3_text": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "phi3": ["qkv_proj", "o_proj"],
    "gpt2": ["c_attn", "c_proj"],
    "gpt_neox": ["query_key_value", "dense"],
    "t5": ["q", "k", "v", "o"],
    "mt5": ["q", "k", "v", "o"],
    "bart": ["q_proj", "k_proj", "v_proj", "out_proj"],
}


def target_modules_for(model: Any, choice: list[str] | str) -> list[str] | str:
    if isinstance(choice, list):
        names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        missing = [m for m in choice if m not in names]
        if missing:
            raise InvalidValueError(
                f"lora.target_modules={missing[0]!r} is not allowed: the model has no module of that name."
            )
        return choice
    if choice == "all-linear":
        return "all-linear"
    model_type = model.config.model_type
    if model_type not in ATTENTION_MODULES:
        raise InvalidValueError(
            f"lora.target_modules=attention is not known for {model_type!r} models: list the module names."
        )
    return ATTENTION_MODULES[model_type]


def peft_config(loaded: LoadedModel, settings: LoraConfig) -> Any:
    from peft import LoraConfig as PeftLoraConfig
    from peft import TaskType

    return PeftLoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=target_modules_for(loaded.model, settings.target_modules),
        task_type=TaskType.SEQ_2_SEQ_LM if loaded.is_encoder_decoder else TaskType.CAUSAL_LM,
    )


def prepare(loaded: LoadedModel, settings: LoraConfig) -> Any:
    from peft import get_peft_model

    model = get_peft_model(loaded.model, peft_config(loaded, settings))
    model.train()
    return model
