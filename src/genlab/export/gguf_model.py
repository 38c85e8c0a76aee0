"""A Hugging Face llama-family model written as one GGUF file that llama.cpp (and Ollama) run.

Tensor names come from the gguf package's ``TensorNameMap`` (``model.layers.0.self_attn.q_proj`` ->
``blk.0.attn_q``), metadata keys from its ``GGUFWriter``, Q8_0 blocks from ``gguf.quants``
(:mod:`genlab.export.quantize`), the tokenizer from :mod:`genlab.export.gguf_tokenizer`.

Written here, as llama.cpp's ``convert_hf_to_gguf.py`` (a script, not an importable library) does it:
the hyper-parameters llama.cpp reads (``llama.*``), and the **Q/K permutation**. Hugging Face's Llama
rotates the two halves of each head (``rotate_half``: dimension i pairs with i + d/2); llama.cpp's
rope pairs neighbours (2i with 2i+1). So the rows of ``q_proj`` (per head) and ``k_proj`` (per
key/value head) are reordered, for each head of size d::

    W'[h, 2i + j] = W[h, j * d/2 + i]      (i < d/2, j in {0, 1})

``reshape(n_head, 2, d/2, -1).swapaxes(1, 2)`` in numpy; transformers undoes exactly this when it reads
a llama GGUF (``reverse_permute`` in ``modeling_gguf_pytorch_utils``), which a test uses as the
reference. Tied output weights are not written (llama.cpp reuses ``token_embd``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import numpy as np

from genlab.errors import GenlabError
from genlab.export.gguf_tokenizer import add_tokenizer
from genlab.export.quantize import FILE_TYPES, encode, tensor_type

ARCHITECTURES = {"llama": gguf.MODEL_ARCH.LLAMA}  # model_type -> GGUF architecture written


class ModelExportError(GenlabError):
    """A model genlab cannot write as GGUF."""


def permute_rotary_rows(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder the rows of a q/k projection (out, in) or bias (out,) from HF's rope layout to llama.cpp's."""
    head_dim = weights.shape[0] // n_head
    return weights.reshape(n_head, 2, head_dim // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def gguf_architecture(config: Any) -> str:
    model_type = getattr(config, "model_type", None)
    if model_type not in ARCHITECTURES:
        raise ModelExportError(
            f"the model is a {model_type!r}; genlab writes GGUF for the llama family ({', '.join(ARCHITECTURES)})."
        )
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    rope_type = rope.get("rope_type", rope.get("type", "default")) if isinstance(rope, dict) else "default"
    if rope_type != "default":
        raise ModelExportError(f"the model scales its rope ({rope_type!r}), which genlab's GGUF export does not write.")
    return gguf.MODEL_ARCH_NAMES[ARCHITECTURES[model_type]]


def rope_theta(config: Any) -> float:
    rope = getattr(config, "rope_parameters", None)
    if isinstance(rope, dict) and "rope_theta" in rope:
        return float(rope["rope_theta"])
    return float(getattr(config, "rope_theta", 10000.0))


def head_dim(config: Any) -> int:
    return int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)


def add_hyperparameters(writer: gguf.GGUFWriter, config: Any) -> None:
    """The ``llama.*`` keys llama.cpp builds the graph from."""
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_block_count(int(config.num_hidden_layers))
    writer.add_head_count(int(config.num_attention_heads))
    writer.add_head_count_kv(int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads))
    writer.add_rope_freq_base(rope_theta(config))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_rope_dimension_count(head_dim(config))
    if head_dim(config) != config.hidden_size // config.num_attention_heads:
        writer.add_key_length(head_dim(config))
        writer.add_value_length(head_dim(config))
    writer.add_vocab_size(int(config.vocab_size))


def gguf_tensors(model: Any) -> list[tuple[str, np.ndarray]]:
    """The model's tensors under llama.cpp's names, as float32 numpy arrays, q/k permuted."""
    config = model.config
    n_head = int(config.num_attention_heads)
    n_kv_head = int(getattr(config, "num_key_value_heads", None) or n_head)
    names = gguf.get_tensor_name_map(ARCHITECTURES[config.model_type], int(config.num_hidden_layers))
    tied = bool(getattr(config, "tie_word_embeddings", False))
    tensors = []
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp falls back to token_embd when output.weight is absent
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ModelExportError(f"the model's tensor {hf_name!r} has no name in llama.cpp's llama layout.")
        data = tensor.detach().to("cpu").float().numpy()
        if hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            data = permute_rotary_rows(data, n_head)
        elif hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            data = permute_rotary_rows(data, n_kv_head)
        tensors.append((name, data))
    return tensors


def write_model_gguf(model: Any, tokenizer: Any, path: str | Path, *, quant: str, name: str) -> Path:
    """Write ``model`` and ``tokenizer`` as one GGUF at ``path`` in ``quant`` (f32, f16 or q8_0).

    The caller writes to a temporary path and renames it (see :mod:`genlab.export.run`).
    """
    if quant not in FILE_TYPES:
        raise ModelExportError(f"quant={quant!r} is not written directly; f32, f16 and q8_0 are (others go through llama.cpp).")
    config = model.config
    arch = gguf_architecture(config)
    path = Path(path)
    writer = gguf.GGUFWriter(path, arch)
    try:
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name(name)
        add_hyperparameters(writer, config)
        writer.add_file_type(FILE_TYPES[quant])
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        add_tokenizer(writer, tokenizer, int(config.vocab_size))
        for tensor_name, data in gguf_tensors(model):
            qtype = tensor_type(quant, data.shape)
            writer.add_tensor(tensor_name, encode(data, qtype), raw_dtype=qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return path
