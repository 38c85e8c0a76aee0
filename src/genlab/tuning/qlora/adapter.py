"""QLoRA (Dettmers et al., 2023): LoRA on a base quantised to 4-bit NF4 by bitsandbytes.

It needs bitsandbytes and a CUDA GPU; on a CPU it stops with one sentence saying so, before any work.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from genlab.errors import GenlabError
from genlab.models.load import LoadedModel
from genlab.tuning.recipe import LoraConfig


class QLoraUnavailableError(GenlabError):
    pass


def check_available() -> None:
    import torch

    if not torch.cuda.is_available():
        raise QLoraUnavailableError(
            "method=qlora needs a CUDA GPU for bitsandbytes' 4-bit kernels and this machine has none: "
            "use method=lora (the same adapter on a full-precision base)."
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise QLoraUnavailableError("method=qlora needs bitsandbytes: pip install bitsandbytes, or use method=lora.")


def quantization_config() -> Any:
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )  # fmt: skip


def prepare(loaded: LoadedModel, settings: LoraConfig) -> Any:
    check_available()
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    from genlab.tuning.lora.adapter import peft_config

    if loaded.path is None:
        raise QLoraUnavailableError("method=qlora reloads the base in 4-bit from its folder, and this model has none.")
    quantized = AutoModelForCausalLM.from_pretrained(loaded.path, quantization_config=quantization_config())
    quantized = prepare_model_for_kbit_training(quantized)
    return get_peft_model(quantized, peft_config(loaded, settings))
