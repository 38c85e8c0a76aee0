"""A peft LoRA adapter written as a GGUF LoRA adapter, which llama.cpp applies on its base's GGUF.

The file llama.cpp reads (``llama_adapter_lora_init``; llama.cpp's ``convert_lora_to_gguf.py`` writes
the same): ``general.type = adapter``, ``adapter.type = lora``, ``adapter.lora.alpha``, the base's
``general.architecture``, and for each adapted weight ``<gguf name>.lora_a`` (rank, in) and
``<gguf name>.lora_b`` (out, rank) — peft's ``lora_A``/``lora_B`` as they are. llama.cpp adds
``scale * alpha / rank * B @ A`` to the weight's product, as peft's ``merge_and_unload`` adds
``alpha / rank * B @ A`` to the weight.

Written here (the script is not an importable library): the name mapping (peft's key ->
``TensorNameMap`` name), and the same permutation rule as the base model's export
(:func:`genlab.export.gguf_model.permute_rotary_rows`): where q/k's rows are reordered in the base
GGUF (the ``llama`` architecture: llama and mistral; not qwen2/qwen3, whose rope llama.cpp runs in
Hugging Face's layout), the delta ``B @ A`` must be too, which reorders the rows of ``B`` and leaves
``A`` alone. With rsLoRA (scale ``alpha / sqrt(rank)``) the written alpha is ``alpha * sqrt(rank)``,
so llama.cpp's ``alpha / rank`` gives the same scale. What llama.cpp cannot apply is refused in one
sentence: DoRA, per-layer alphas, LoRA biases, trained embeddings or heads (``modules_to_save``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from genlab.errors import GenlabError
from genlab.export.gguf_model import (
    architecture_of,
    gguf_architecture,
    permute_rotary_rows,
)

PEFT_PREFIX = "base_model.model."


class AdapterExportError(GenlabError):
    """An adapter that genlab cannot write as a GGUF LoRA adapter."""


def lora_alpha(adapter_config: dict[str, Any]) -> float:
    """The alpha llama.cpp needs so that its ``alpha / rank`` is peft's scale for this adapter."""
    name = adapter_config.get("_name", "the adapter")
    if adapter_config.get("peft_type") != "LORA":
        raise AdapterExportError(f"{name} is a {adapter_config.get('peft_type')} adapter; a GGUF LoRA adapter holds LoRA only.")
    refusals = {
        "use_dora": "is DoRA (a learned magnitude), which llama.cpp's LoRA adapters do not apply",
        "alpha_pattern": "sets a different alpha per layer, which a GGUF LoRA adapter (one alpha) cannot hold",
        "modules_to_save": "trains whole modules (modules_to_save), which a GGUF LoRA adapter cannot hold",
        "lora_bias": "trains LoRA biases, which llama.cpp's LoRA adapters do not apply",
    }
    for key, reason in refusals.items():
        if adapter_config.get(key):
            raise AdapterExportError(f"{name} {reason}: merge it instead (genlab export gguf without --lora).")
    alpha, rank = float(adapter_config["lora_alpha"]), int(adapter_config["r"])
    if adapter_config.get("use_rslora"):
        return alpha * math.sqrt(rank)  # rsLoRA scales by alpha / sqrt(r); llama.cpp by alpha / r
    return alpha


def lora_tensors(weights: dict[str, Any], config: Any) -> list[tuple[str, np.ndarray]]:
    """peft's ``...lora_A.weight``/``lora_B.weight`` tensors as ``<gguf name>.lora_a``/``.lora_b``, B of q/k permuted as the base's rows."""
    architecture = architecture_of(config)
    n_head = int(config.num_attention_heads)
    n_kv_head = int(getattr(config, "num_key_value_heads", None) or n_head)
    names = gguf.get_tensor_name_map(architecture.arch, int(config.num_hidden_layers))
    tensors = []
    for key, tensor in sorted(weights.items()):
        module, _, part = key.removeprefix(PEFT_PREFIX).rpartition(".lora_")
        if part not in ("A.weight", "B.weight"):
            raise AdapterExportError(f"the adapter's tensor {key!r} is not a LoRA A or B matrix, so llama.cpp cannot apply it.")
        if module.endswith(("embed_tokens", "lm_head")):
            raise AdapterExportError(f"the adapter adapts {module!r}; genlab's GGUF LoRA export covers linear layers only.")
        name = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if name is None:
            raise AdapterExportError(
                f"the adapted layer {module!r} has no name in llama.cpp's {gguf.MODEL_ARCH_NAMES[architecture.arch]} layout."
            )
        data = tensor.detach().to("cpu").float().numpy()
        permute = architecture.permute_qk and part == "B.weight"
        if permute and module.endswith("q_proj"):
            data = permute_rotary_rows(data, n_head)
        elif permute and module.endswith("k_proj"):
            data = permute_rotary_rows(data, n_kv_head)
        tensors.append((f"{name}.lora_{part[0].lower()}", np.ascontiguousarray(data, dtype=np.float32)))
    return tensors


def write_lora_gguf(adapter_folder: str | Path, base_config: Any, path: str | Path, *, name: str) -> Path:
    """Write the peft LoRA adapter in ``adapter_folder`` (for a base with ``base_config``) as a GGUF at ``path``.

    The tensors stay f32: they are small, and llama.cpp applies them on any base quantisation.
    """
    from peft.utils import load_peft_weights

    folder = Path(adapter_folder)
    adapter_config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    alpha = lora_alpha({**adapter_config, "_name": f"adapter {folder.name!r}"})
    arch = gguf_architecture(base_config)
    tensors = lora_tensors(load_peft_weights(str(folder), device="cpu"), base_config)
    if not tensors:
        raise AdapterExportError(f"adapter {folder.name!r} holds no LoRA weights.")
    writer = gguf.GGUFWriter(Path(path), arch)
    try:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        writer.add_name(name)
        for tensor_name, data in tensors:
            writer.add_tensor(tensor_name, data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return Path(path)
