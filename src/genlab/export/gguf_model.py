"""A Hugging Face llama, mistral, qwen2 or qwen3 model written as one GGUF file that llama.cpp (and Ollama) run.

Tensor names come from the gguf package's ``TensorNameMap`` (``model.layers.0.self_attn.q_proj`` ->
``blk.0.attn_q``, Qwen3's ``q_norm`` -> ``blk.0.attn_q_norm``), metadata keys from its ``GGUFWriter``,
Q8_0 blocks from ``gguf.quants`` (:mod:`genlab.export.quantize`), the tokenizer from
:mod:`genlab.export.gguf_tokenizer`.

Written here, as llama.cpp's ``convert_hf_to_gguf.py`` (a script, not an importable library) does it,
one row of :data:`ARCHITECTURES` per Hugging Face ``model_type``:

- which GGUF architecture is written: ``mistral`` is written as ``llama`` (the same graph; the script's
  ``LlamaModel`` converts both), ``qwen2`` as ``qwen2`` (q/k/v biases), ``qwen3`` as ``qwen3`` (an RMS
  norm on each head's q and k, and a head_dim of its own, written as ``attention.key_length``);
- the hyper-parameters: the keys every architecture reads (context, widths, heads, rope base, RMS
  eps, and head_dim as ``attention.key_length``/``value_length`` where it is not hidden / heads), and
  the ones only the script's ``LlamaModel`` adds (``vocab_size``, ``rope.dimension_count``). Like the
  script, no sliding window is written: llama.cpp attends to the whole context, which is the model's
  own attention up to the window (4096 tokens for Mistral 7B v0.1; later Mistrals and Qwen2/3 as
  released use none);
- the **Q/K permutation**, for ``llama`` only. Hugging Face rotates the two halves of each head
  (``rotate_half``: dimension i pairs with i + d/2); llama.cpp's ``llama`` rope pairs neighbours (2i
  with 2i+1). So the rows of ``q_proj`` (per head) and ``k_proj`` (per key/value head) are
  reordered, for each head of size d::

      W'[h, 2i + j] = W[h, j * d/2 + i]      (i < d/2, j in {0, 1})

  ``reshape(n_head, 2, d/2, -1).swapaxes(1, 2)`` in numpy; transformers undoes exactly this when it
  reads a llama GGUF (``reverse_permute`` in ``modeling_gguf_pytorch_utils``), which a test uses as
  the reference. llama.cpp runs ``qwen2`` and ``qwen3`` with NEOX rope, which pairs i with i + d/2 as
  Hugging Face does, so their rows are written as they are.

Tied output weights are not written (llama.cpp reuses ``token_embd`` for all four).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from genlab.errors import GenlabError
from genlab.export.gguf_tokenizer import add_tokenizer
from genlab.export.quantize import FILE_TYPES, encode, tensor_type


class ModelExportError(GenlabError):
    """A model genlab cannot write as GGUF."""


def rope_theta(config: Any) -> float:
    rope = getattr(config, "rope_parameters", None)
    if isinstance(rope, dict) and "rope_theta" in rope:
        return float(rope["rope_theta"])
    return float(getattr(config, "rope_theta", 10000.0))


def head_dim(config: Any) -> int:
    return int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)


def add_vocab_size(writer: gguf.GGUFWriter, config: Any) -> None:
    writer.add_vocab_size(int(config.vocab_size))


def add_rope_dimension_count(writer: gguf.GGUFWriter, config: Any) -> None:
    writer.add_rope_dimension_count(head_dim(config))  # the whole head is rotated


@dataclass(frozen=True)
class GgufArchitecture:
    """What llama.cpp's convert_hf_to_gguf.py does for one Hugging Face ``model_type``."""

    arch: gguf.MODEL_ARCH  # general.architecture, and the tensor name map
    permute_qk: bool  # llama.cpp's rope pairs neighbouring dimensions (llama), not halves as HF and NEOX (qwen2/3) do
    extra_keys: tuple[Callable[[gguf.GGUFWriter, Any], None], ...] = ()  # hyper-parameters only this converter writes


LLAMA = GgufArchitecture(gguf.MODEL_ARCH.LLAMA, permute_qk=True, extra_keys=(add_vocab_size, add_rope_dimension_count))
ARCHITECTURES: dict[str, GgufArchitecture] = {  # Hugging Face model_type -> how it is written
    "llama": LLAMA,
    "mistral": LLAMA,  # the script's LlamaModel converts MistralForCausalLM too
    "qwen2": GgufArchitecture(gguf.MODEL_ARCH.QWEN2, permute_qk=False),  # Qwen2Model
    "qwen3": GgufArchitecture(gguf.MODEL_ARCH.QWEN3, permute_qk=False),  # Qwen3Model (q_norm/k_norm are tensors only)
}


def permute_rotary_rows(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder the rows of a q/k projection (out, in) or bias (out,) from HF's rope layout to llama.cpp's."""
    head_dim = weights.shape[0] // n_head
    return weights.reshape(n_head, 2, head_dim // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def architecture_of(config: Any) -> GgufArchitecture:
    """How a model with this config is written (refused, in one sentence, if it cannot be)."""
    model_type = getattr(config, "model_type", None)
    if model_type not in ARCHITECTURES:
        raise ModelExportError(
            f"the model is a {model_type!r}; genlab writes GGUF for {', '.join(ARCHITECTURES)} models only."
        )
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    rope_type = rope.get("rope_type", rope.get("type", "default")) if isinstance(rope, dict) else "default"
    if rope_type != "default":
        raise ModelExportError(f"the model scales its rope ({rope_type!r}), which genlab's GGUF export does not write.")
    return ARCHITECTURES[model_type]


def gguf_architecture(config: Any) -> str:
    """The ``general.architecture`` written for this config (``llama`` for a mistral)."""
    return gguf.MODEL_ARCH_NAMES[architecture_of(config).arch]


def add_hyperparameters(writer: gguf.GGUFWriter, config: Any) -> None:
    """The ``<arch>.*`` keys llama.cpp builds the graph from."""
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_block_count(int(config.num_hidden_layers))
    writer.add_head_count(int(config.num_attention_heads))
    writer.add_head_count_kv(int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads))
    writer.add_rope_freq_base(rope_theta(config))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    if head_dim(config) != config.hidden_size // config.num_attention_heads:  # Qwen3, Mistral Nemo
        writer.add_key_length(head_dim(config))
        writer.add_value_length(head_dim(config))
    for add_key in architecture_of(config).extra_keys:
        add_key(writer, config)


def gguf_tensors(model: Any) -> list[tuple[str, np.ndarray]]:
    """The model's tensors under llama.cpp's names, as float32 numpy arrays, q/k permuted where llama.cpp needs it."""
    config = model.config
    architecture = architecture_of(config)
    n_head = int(config.num_attention_heads)
    n_kv_head = int(getattr(config, "num_key_value_heads", None) or n_head)
    names = gguf.get_tensor_name_map(architecture.arch, int(config.num_hidden_layers))
    tied = bool(getattr(config, "tie_word_embeddings", False))
    tensors = []
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp falls back to token_embd when output.weight is absent
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ModelExportError(
                f"the model's tensor {hf_name!r} has no name in llama.cpp's {gguf.MODEL_ARCH_NAMES[architecture.arch]} layout."
            )
        data = tensor.detach().to("cpu").float().numpy()
        if architecture.permute_qk and hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            data = permute_rotary_rows(data, n_head)
        elif architecture.permute_qk and hf_name.endswith(("k_proj.weight", "k_proj.bias")):
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
