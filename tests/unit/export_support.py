"""Shared by the export tests: a tiny llama base saved as a folder, and a LoRA adapter trained on it (peft)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import torch

from genlab.models.adapters import base_fingerprint, save_adapter
from genlab.models.load import load_model
from genlab.models.tiny import save_tiny_model

LORA_RANK, LORA_ALPHA = 4, 8


def build_base_and_lora(root: Path, **lora_options) -> dict[str, Path]:
    """A tiny base folder and a LoRA adapter on q/k/v/o and the MLP (random, non-zero B: it changes outputs)."""
    from peft import LoraConfig, get_peft_model

    base = save_tiny_model(root / "base", seed=3)
    loaded = load_model(str(base))
    fingerprint = base_fingerprint(loaded)
    torch.manual_seed(1)
    config = LoraConfig(
        r=LORA_RANK, lora_alpha=LORA_ALPHA, init_lora_weights=False,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], **lora_options,
    )  # fmt: skip
    peft_model = get_peft_model(loaded.model, config)
    adapter = save_adapter(peft_model, root / "tiny-lora", base=loaded, method="lora", run_id=None, fingerprint=fingerprint)
    return {"base": base, "adapter": adapter}



@functools.cache
def shared_base_and_lora() -> dict[str, Path]:
    """One tiny base and LoRA per test process (in a temporary folder), for the export tests that only read them."""
    return build_base_and_lora(Path(tempfile.mkdtemp(prefix="genlab-export-tiny-")))
