"""The architecture's dimensions (:class:`ArchitectureShape`) read from a transformers config.

Lives below both the packs (which record a converted model's shape in its manifest) and the
estimates (which compute memory from it), so neither imports the other.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from genlab.models.card import ArchitectureShape

GATED_MLP_MODEL_TYPES = {"llama", "qwen2", "qwen3", "mistral", "gemma", "gemma2", "gemma3_text", "phi3", "smollm3"}


def shape_from_config(config: Any) -> ArchitectureShape | None:
    """Architecture dims from a transformers config (Llama-like, T5, GPT-2, BART, BERT); None if unreadable.

    For encoder-decoder models the dims are those of the encoder stack.
    """

    def first(*names: str) -> Any:
        return next((value for name in names if (value := getattr(config, name, None)) is not None), None)

    model_type = getattr(config, "model_type", "") or ""
    hidden = first("d_model", "n_embd", "hidden_size")
    heads = first("encoder_attention_heads", "num_heads", "n_head", "num_attention_heads")
    intermediate = first("encoder_ffn_dim", "d_ff", "n_inner", "intermediate_size")
    if intermediate is None and model_type == "gpt2" and hidden is not None:
        intermediate = 4 * hidden  # GPT-2's n_inner=None means a 4× wide MLP
    feed_forward = str(getattr(config, "feed_forward_proj", "") or "")
    try:
        return ArchitectureShape(
            num_layers=first("encoder_layers", "num_layers", "n_layer", "num_hidden_layers"),
            hidden_size=hidden,
            num_heads=heads,
            num_kv_heads=first("num_key_value_heads") or heads,
            head_dim=_explicit_head_dim(first("head_dim", "d_kv"), hidden, heads),
            intermediate_size=intermediate,
            vocab_size=first("vocab_size"),
            gated_mlp=model_type in GATED_MLP_MODEL_TYPES or feed_forward.startswith("gated"),
        )
    except ValidationError:
        return None


def _explicit_head_dim(head_dim: Any, hidden: Any, heads: Any) -> int | None:
    """The config's head_dim only where it differs from hidden_size / num_heads (Gemma, Qwen3, some T5s)."""
    if isinstance(head_dim, int) and isinstance(hidden, int) and isinstance(heads, int) and heads > 0:
        return head_dim if head_dim * heads != hidden else None
    return None
