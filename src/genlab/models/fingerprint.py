"""The identity of a base model, so an adapter is never loaded onto weights it was not trained on.

A base loaded from a folder or file is identified by the SHA-256 of its files (the lineage store's
content hash, cached by sizes and modification times, so a large model is hashed once); a model built
in memory by the SHA-256 of its tensors. Both are taken with peft's own tensors left out, so the
fingerprint of a peft-wrapped model is its base's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from genlab.models.load import LoadedModel


def base_fingerprint(loaded: LoadedModel) -> str:
    """The identity of a base: its files' content hash, or its weights' hash when built in memory.

    Call it before peft wraps the model; for an already wrapped model the adapter's own tensors are
    left out, so the result is the base's either way.
    """
    if loaded.path is not None and Path(loaded.path).exists():
        from genlab.lineage import LineageStore

        with LineageStore() as store:  # cached by sizes and modification times: hashed once per file
            return "sha256:" + store.content_hash(Path(loaded.path))
    return "weights-sha256:" + weights_hash(loaded.model)


def weights_hash(model: Any) -> str:
    """SHA-256 over a model's tensors (names, shapes, dtypes, bytes), peft's own tensors excluded."""
    digest = hashlib.sha256()
    for name, tensor in sorted(_base_state(model).items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}\n".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(dtype=_byte_dtype()).numpy().tobytes())
    return digest.hexdigest()


def _byte_dtype() -> Any:
    import torch

    return torch.uint8


def _base_state(model: Any) -> dict[str, Any]:
    """The base's tensors under the base's own names, with peft's wrappers and adapter tensors removed."""
    import sys

    if hasattr(model, "get_base_model"):  # a PeftModel: its prompt encoder and embedding aliases are left out
        model = model.get_base_model()
    adapter_parts = {"modules_to_save", "prompt_encoder", "trainable_tokens_delta"}
    if "peft" in sys.modules:  # a model can hold peft's layers only if peft was imported
        from peft.tuners.tuners_utils import BaseTunerLayer

        for module in model.modules():
            if isinstance(module, BaseTunerLayer):
                adapter_parts.update(module.adapter_layer_names)  # lora_A, lora_B, lora_magnitude_vector, ...
    state = {}
    for name, tensor in model.state_dict().items():
        parts = name.split(".")
        if adapter_parts.intersection(parts):
            continue
        # LoRA keeps the base layer as ``<layer>.base_layer``, modules_to_save as ``<layer>.original_module``.
        state[".".join(p for p in parts if p not in ("base_layer", "original_module"))] = tensor
    return state
