"""The int8 layers an ``int8-dynamic`` model runs on: Linear, LM head and tied embedding.

Per-channel symmetric int8 weights; activations quantised per token at decoding through fbgemm's
dynamic int8 Linear, and kept fp32 in prompts. Why these choices, and what they were measured to
cost and gain, is in :mod:`genlab.optimize.quantize.run`, which writes and loads the models built from
these layers.
"""

from __future__ import annotations

import warnings
from typing import Any

HEAD_RESCORE_TOP_K = 64  # see RescoredInt8Head


def quantize_weight(weight: Any) -> tuple[Any, Any]:
    """Symmetric per-output-channel int8: (q int8 (out, in), scale fp32 (out,)); see the module docstring."""
    import torch

    weight = weight.detach().float()
    scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0  # (out,)
    q = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


def int8_linear(q: Any, scale: Any, bias: Any | None) -> Any:
    """An fbgemm dynamic int8 Linear holding ``q`` with per-channel ``scale`` (activations quantised per call)."""
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    out_features, in_features = q.shape
    zero_points = torch.zeros(out_features, dtype=torch.long)
    with warnings.catch_warnings():  # quantized tensors are deprecated in torch 2.13; see the module docstring
        warnings.simplefilter("ignore", UserWarning)
        qweight = torch._make_per_channel_quantized_tensor(q, scale.double(), zero_points, 0)
    module = DynamicInt8Linear(in_features, out_features, bias_=bias is not None, dtype=torch.qint8)
    module.set_weight_bias(qweight, None if bias is None else bias.detach().float())
    return _per_token_class()(module)


def _decoding_step(x: Any) -> bool:
    """Whether a Linear input is one new token per sequence, (batch, 1, in), rather than a prompt."""
    return x.dim() == 3 and x.shape[1] == 1


def _per_token_class() -> type:
    import torch

    linear_dynamic = torch.ops.quantized.linear_dynamic.default

    class PerTokenInt8Linear(torch.nn.Module):
        """fbgemm's dynamic int8 Linear, with one activation scale per token.

        fbgemm quantises its whole input with one scale. A prompt's tokens do not share a range:
        a few tokens carry activations hundreds of times larger than the rest, and one scale for
        all of them rounds the others away (perplexity of 30 builtin summaries: fp32 166, one scale
        per call 498, one per token 161 -- simulated). So decoding (one new token per sequence) calls
        fbgemm once per sequence, and a prompt (prefill) is multiplied by the int8 weights dequantised
        to fp32 for that call: prefill keeps fp32 activations, decoding runs in int8.
        """

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner
            self.in_features, self.out_features = inner.in_features, inner.out_features

        def forward(self, x: Any) -> Any:
            if _decoding_step(x):
                # fbgemm's op called directly, as the inner module's forward would (7-bit activations,
                # reduce_range): a decode step makes 211 of these calls on the default model, and the
                # module call and dispatch checks around each cost ~2 ms of a ~22 ms step.
                packed = self.inner._packed_params._packed_params
                if x.shape[0] == 1:
                    return linear_dynamic(x, packed, True)
                return torch.cat([linear_dynamic(row, packed, True) for row in x.split(1)])
            weight, bias = self.inner._weight_bias()
            return torch.nn.functional.linear(x, weight.dequantize(), bias)

        def packed(self) -> tuple[Any, Any]:
            """(int8 weights, per-channel scales)."""
            weight = self.inner._weight_bias()[0]
            return weight.int_repr(), weight.q_per_channel_scales().float()

    return PerTokenInt8Linear


def rescored_head_class() -> type:
    import torch

    class RescoredInt8Head(torch.nn.Module):
        """An int8 LM head whose ``top_k`` best logits per position are recomputed from fp32 activations.

        The head's int8 logits choose the candidates; for those, ``x @ (q * s)^T`` with ``x`` unrounded
        replaces them, so only the weights' per-channel rounding is left in the logits that decide
        greedy and top-k/top-p choices. The rest of the vocabulary keeps its int8 logits. The extra
        work is a (top_k x hidden) product per position: 64 x 576 against the head's 49152 x 576.
        """

        def __init__(self, inner: Any, top_k: int, packed: tuple[Any, Any] | None = None) -> None:
            super().__init__()
            self.inner, self.top_k = inner, top_k
            self.in_features, self.out_features = inner.in_features, inner.out_features
            q, scale = packed if packed is not None else inner.packed()  # a tied int8 embedding's, shared
            self.register_buffer("weight_int8", q, persistent=False)
            self.register_buffer("weight_scale", scale, persistent=False)
            self.register_buffer("head_bias", inner.inner.bias(), persistent=False)  # None for most LM heads

        def forward(self, x: Any) -> Any:
            logits = self.inner(x)
            if not _decoding_step(x):  # a prompt: already fp32 activations (see PerTokenInt8Linear)
                return logits
            top = logits.topk(min(self.top_k, logits.shape[-1]), dim=-1).indices  # (..., k)
            rows = self.weight_int8[top].float() * self.weight_scale[top].unsqueeze(-1)  # (..., k, hidden)
            exact = (rows @ x.float().unsqueeze(-1)).squeeze(-1)  # (..., k)
            if self.head_bias is not None:
                exact = exact + self.head_bias[top]
            return logits.scatter(-1, top, exact.to(logits.dtype))

        def packed(self) -> tuple[Any, Any]:
            return self.inner.packed()

    return RescoredInt8Head


def int8_embedding_class() -> type:
    import torch

    class Int8Embedding(torch.nn.Module):
        """An embedding read from int8 rows times their scale (the tied LM head's int8 matrix)."""

        def __init__(self, q: Any, scale: Any, padding_idx: int | None = None) -> None:
            super().__init__()
            self.register_buffer("weight_int8", q)  # (vocab, hidden) int8
            self.register_buffer("weight_scale", scale)  # (vocab,) fp32
            self.padding_idx = padding_idx
            self.num_embeddings, self.embedding_dim = q.shape

        def forward(self, input_ids: Any) -> Any:
            rows = torch.nn.functional.embedding(input_ids, self.weight_int8)  # (B, T, hidden) int8
            return rows.float() * self.weight_scale[input_ids].unsqueeze(-1)

    return Int8Embedding
