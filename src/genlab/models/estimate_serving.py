"""What serving on CPU with genlab's engine holds beyond the weights and an exactly sized KV cache.

- the reordered copy of every large fp32 Linear weight, the LM head included
  (:mod:`genlab.generation.packed_linear`; 540 MB for the default model), fp32 only;
- the cache's headroom: :mod:`genlab.generation.growing_cache` grows a full cache to
  ``used + max(new, 64, used // 2)`` columns, so a cache of S tokens has room for up to ~1.5 S;
- the prefill's widest moment inside one layer (batch × prompt tokens): the MLP's gate, up, SiLU and
  product (4i), the hidden state, its norm and the residual (4h), the keys and values repeated to every
  query head (2q); and with a padding mask the attention scores and their softmax
  (2 × heads × prompt² per row), which torch's CPU kernel computes in full.

Counted by hand from those modules; the figures are checked against measured peaks by
``bench/estimate.py``.
"""

from __future__ import annotations

from genlab.models.card import ArchitectureShape

MIN_SPARE_COLUMNS = 64  # genlab.generation.growing_cache's rule, repeated here (models sits below generation)
FP32_BYTES = 4


def linear_weight_params(shape: ArchitectureShape) -> int:
    """Parameters held by Linear layers: the attention and MLP projections of every layer and the LM head."""
    head = shape.attention_head_dim
    q, kv, i, h = shape.num_heads * head, shape.num_kv_heads * head, shape.intermediate_size, shape.hidden_size
    mlp = (3 if shape.gated_mlp else 2) * h * i
    return shape.num_layers * (2 * q * h + 2 * kv * h + mlp) + shape.vocab_size * h


def cache_capacity(tokens: int) -> int:
    """Columns a growing cache has allocated once it holds ``tokens`` (grown from a prefill of that length)."""
    return tokens + max(MIN_SPARE_COLUMNS, tokens // 2)


def prefill_peak_bytes(shape: ArchitectureShape, batch_size: int, prompt_tokens: int, bytes_per_value: float) -> float:
    head = shape.attention_head_dim
    widths = 4 * shape.intermediate_size + 4 * shape.hidden_size + 2 * shape.num_heads * head
    scores = 2 * shape.num_heads * prompt_tokens * prompt_tokens
    return batch_size * (prompt_tokens * widths + scores) * bytes_per_value


def serving_extra_bytes(shape: ArchitectureShape, batch_size: int, seq_len: int, dtype: str, kv_cache: float) -> float:
    """Bytes beyond ``weights + kv_cache`` that serving ``batch_size`` sequences of ``seq_len`` tokens holds."""
    reordered = linear_weight_params(shape) * FP32_BYTES if dtype == "fp32" else 0.0
    headroom = kv_cache * (cache_capacity(seq_len) / seq_len - 1)
    compute_bytes = FP32_BYTES if dtype in ("fp32", "int8", "int4") else 2  # quantised weights compute in fp32
    return reordered + headroom + prefill_peak_bytes(shape, batch_size, seq_len, compute_bytes)
