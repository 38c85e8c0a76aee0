"""GGUF files: check them, read their facts, and load them into transformers (dequantised).

transformers reads GGUF through the ``gguf`` package and dequantises the weights to the requested
dtype (fp32 here), so the result is an ordinary ``PreTrainedModel`` that trains and saves like any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genlab.errors import ModelLoadError, ModelNotFoundError

GGUF_MAGIC = b"GGUF"


def check_gguf_file(path: Path) -> None:
    if not path.is_file():
        raise ModelNotFoundError(f"no GGUF file at {path}.")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes).")


def read_gguf_facts(path: Path) -> dict[str, Any]:
    """Parameter count (from the tensor shapes) and architecture dims (from the metadata) of a GGUF."""
    from gguf import GGUFReader

    check_gguf_file(path)
    try:
        reader = GGUFReader(path)
    except Exception as error:  # noqa: BLE001 - the gguf reader raises many kinds on a damaged file
        raise ModelLoadError(f"{path} is a damaged GGUF file ({type(error).__name__}: {error}).") from None

    def field(key: str) -> Any:
        item = reader.fields.get(key)
        return None if item is None else item.contents()

    arch = field("general.architecture")
    facts: dict[str, Any] = {
        "params": int(sum(int(t.n_elements) for t in reader.tensors)),
        "architecture": arch,
        "license": field("general.license"),
        "context_window": field(f"{arch}.context_length"),
    }
    layers, hidden = field(f"{arch}.block_count"), field(f"{arch}.embedding_length")
    heads, ffn = field(f"{arch}.attention.head_count"), field(f"{arch}.feed_forward_length")
    if all(v is not None for v in (layers, hidden, heads, ffn)):
        token_embd = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
        vocab = field(f"{arch}.vocab_size") or (int(token_embd.shape[-1]) if token_embd is not None else None)
        facts["shape"] = {
            "num_layers": int(layers),
            "hidden_size": int(hidden),
            "num_heads": int(heads),
            "num_kv_heads": int(field(f"{arch}.attention.head_count_kv") or heads),
            "intermediate_size": int(ffn),
            "vocab_size": int(vocab),
            "gated_mlp": arch in {"llama", "qwen2", "mistral", "gemma", "gemma2", "gemma3"},
        }
    return facts


def load_gguf(path: Path, dtype: Any) -> tuple[Any, Any]:
    """Load model and tokenizer from a GGUF file, dequantised to ``dtype``."""
    import functools
    from unittest import mock

    import tqdm.auto
    from transformers import AutoModelForCausalLM, AutoTokenizer, modeling_gguf_pytorch_utils

    check_gguf_file(path)
    # transformers draws its own tqdm bar per tensor, which no logging switch turns off; callers show
    # one status line instead.
    quiet_tqdm = functools.partial(tqdm.auto.tqdm, disable=True)
    try:
        with mock.patch.object(modeling_gguf_pytorch_utils, "tqdm", quiet_tqdm):
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
    except Exception as error:  # noqa: BLE001 - corrupt or unsupported files fail in many ways
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelLoadError(f"could not load the GGUF file {path}: {first_line}") from None
    # The weights are dequantised now; forget the GGUF quantiser so the model saves as plain safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    return model, tokenizer
