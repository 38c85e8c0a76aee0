"""A real LoRA adapter on the default model for the serving tests: random A and B, B scaled down.

The update is small, so the 135M model still reads questions as the base does, but it is a distinct
peft adapter that the server routes by its id and applies per row.
"""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model

from genlab.models.adapters import save_adapter
from genlab.models.fingerprint import base_fingerprint
from genlab.models.load import load_model


def small_lora(model: str, folder: Path, *, seed: int = 0, scale: float = 0.01) -> Path:
    """Save a LoRA (r=4 on q_proj and v_proj) of ``model`` to ``folder``; its folder."""
    loaded = load_model(model)
    fingerprint = base_fingerprint(loaded)
    torch.manual_seed(seed)
    peft_model = get_peft_model(
        loaded.model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    with torch.no_grad():
        for name, weight in peft_model.named_parameters():
            if "lora_B" in name:
                weight.mul_(scale)
    return save_adapter(peft_model, folder, base=loaded, method="lora", run_id=None, fingerprint=fingerprint)
