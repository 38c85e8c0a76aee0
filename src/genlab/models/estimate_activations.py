"""Activation memory from the architecture's shape, for a given batch and sequence length.

Counted, not guessed: the tensors autograd saves for the backward pass of one decoder layer of a
Llama-like model as transformers runs it (``sdpa`` attention, its default), per token, in units of the
layer's widths -- h (hidden), q (heads × head_dim), kv (KV heads × head_dim), i (MLP width) -- times
the dtype's bytes. PyTorch saves a matmul's input only when the weight needs a gradient, so what is
saved depends on what trains. The counts were read with ``torch.autograd.graph.saved_tensors_hooks``
on the default model's shape (storage sizes, two layers against four, torch 2.13, transformers 5.25):

=====================  ==============================================================  ==============
what trains            saved per layer and token                                       SmolLM2-135M,
                                                                                       counted (seen)
=====================  ==============================================================  ==============
every weight (full)    norms, residuals and projection inputs (6h + 2q), rotated k     11,136 (11,147)
                       and v (2kv), gate, up, SiLU(gate), SiLU(gate)·up (4i)
LoRA                   residuals and attention tensors (2h + 2q + 2kv), gate, up and   17,392 (17,403)
                       SiLU(gate) (3i); per adapted matrix its dropout's output and    r=16, all-linear
                       mask (2 × d_in: on CPU torch's dropout keeps a float mask;
                       CUDA's fused kernel keeps a byte, 1.25 × d_in) and A's output (r)
prompt tuning          as LoRA's frozen layer (2h + 2q + 2kv + 3i): the gradient still   7,296 (7,307)
                       flows through every layer to the soft prompt's virtual tokens
=====================  ==============================================================  ==============

The few floats "seen" beyond the count are per-token scalars (RMSNorm's rsqrt, the attention's
log-sum-exp per head), left out. ``tests/unit/test_estimate_measured.py`` repeats the check on a tiny shape.

``sdpa`` keeps no attention scores: without padding transformers passes no mask and torch's flash
kernel keeps a log-sum-exp per head and token instead of heads × length² scores. ``eager`` attention
keeps its softmax output (heads × L² per layer and row): :func:`attention_scores_bytes`.

Logits and their gradient over the vocabulary: ``log_softmax``'s output that cross-entropy saves, and in
the backward pass the gradient of the loss and of the logits -- ``LOGITS_COPIES`` = 3 live at once, batch
× length × vocab × 4 bytes each (transformers' loss runs in fp32 whatever the model's dtype).

Gradient checkpointing (Chen et al. 2016; transformers checkpoints each decoder layer): each layer
keeps only its input (h per token) and the backward pass recomputes one layer at a time, so one
layer's saved tensors are live on top of the checkpoints. With LoRA, every layer also keeps about one
float per token for each adapted matrix's input width (Σ d_in) beyond its checkpoint: measured, not
traced to a tensor. On the default model (r=16, all-linear, dropout 0.05) the peak grew by 1.9 MB per
token with checkpointing on, against 0.8 for full training and 0.9 for prompt tuning, and this term
brings the four LoRA rows of ``bench/estimate.py`` from 0.63-0.90 of the measured peak to 0.96-1.04.
It is counted whatever the dropout (without dropout it may overestimate: the safe side).

What a process really holds is more than what autograd saves: gradients of activations while the
backward pass runs, and memory the allocator freed but did not give back (glibc keeps blocks under
32 MB in its heap). ``CPU_ACTIVATION_OVERHEAD`` multiplies the counted bytes by the ratio measured on
the default model (peak resident memory minus weights, adapter states and the framework, over the
counted activations): 1.41 for LoRA at batch 1 × 256 tokens and 1.42 at batch 4 × 384 (torch 2.13 CPU).

Written by hand because no maintained library computes activation memory from a transformers
config (DeepSpeed's estimators count model states only; see :mod:`genlab.models.estimate`).
"""

from __future__ import annotations

from dataclasses import dataclass

from genlab.models.card import ArchitectureShape

LOGITS_COPIES = 3  # log_softmax output + the gradients of the loss and of the logits, live together
DROPOUT_MASK_FLOATS = 1.0  # torch's CPU dropout keeps its mask as a float tensor (CUDA: 0.25, a byte)
LOSS_BYTES = 4  # transformers' loss upcasts logits to fp32
CPU_ACTIVATION_OVERHEAD = 1.4  # measured: see the module docstring


@dataclass(frozen=True)
class Widths:
    """The per-token widths of one layer's tensors."""

    h: int
    q: int
    kv: int
    i: int
    gated: bool

    @classmethod
    def of(cls, shape: ArchitectureShape) -> Widths:
        head = shape.attention_head_dim
        return cls(shape.hidden_size, shape.num_heads * head, shape.num_kv_heads * head, shape.intermediate_size,
                   shape.gated_mlp)  # fmt: skip

    def mlp_saved(self, *, trained: bool) -> int:
        """gate, up and SiLU(gate) (+ the down projection's input when its weight trains); a plain MLP keeps fewer."""
        if self.gated:
            return 4 * self.i if trained else 3 * self.i
        return 2 * self.i if trained else self.i


def lora_inputs(shape: ArchitectureShape, targets: str) -> list[int]:
    """The input width d_in of every matrix LoRA adapts in one layer (each gets its own dropout)."""
    w = Widths.of(shape)
    if targets == "attention":  # q and v
        return [w.h, w.h]
    mlp = [w.h, w.h, w.i] if w.gated else [w.h, w.i]
    return [w.h, w.h, w.h, w.q, *mlp]


def saved_floats_per_token_layer(shape: ArchitectureShape, mode: str, *, lora_rank: int = 8,
                                 lora_targets: str = "attention", lora_dropout: bool = True) -> float:  # fmt: skip
    """Floats autograd keeps per token in one decoder layer (see the module docstring's table)."""
    w = Widths.of(shape)
    if mode == "train":
        return 6 * w.h + 2 * w.q + 2 * w.kv + w.mlp_saved(trained=True)
    frozen = 2 * w.h + 2 * w.q + 2 * w.kv + w.mlp_saved(trained=False)
    if mode in ("lora", "qlora"):
        per_input = (1 + DROPOUT_MASK_FLOATS) if lora_dropout else 0.0  # without dropout A reads a kept tensor
        return frozen + sum(per_input * d_in + lora_rank for d_in in lora_inputs(shape, lora_targets))
    return frozen  # prompt tuning: nothing in the layer trains


def attention_scores_bytes(shape: ArchitectureShape, batch_size: int, seq_len: int, bytes_per_value: float) -> float:
    """Eager attention's saved softmax output for all layers (sdpa's flash kernel keeps none)."""
    return shape.num_layers * batch_size * shape.num_heads * seq_len * seq_len * bytes_per_value


def logits_bytes(shape: ArchitectureShape, batch_size: int, seq_len: int) -> float:
    """The logits over the vocabulary and their gradient: ``LOGITS_COPIES`` fp32 copies."""
    return LOGITS_COPIES * batch_size * seq_len * shape.vocab_size * LOSS_BYTES


def training_activation_bytes(
    shape: ArchitectureShape,
    mode: str,
    batch_size: int,
    seq_len: int,
    bytes_per_value: float,
    *,
    gradient_checkpointing: bool = False,
    lora_rank: int = 8,
    lora_targets: str = "attention",
    lora_dropout: bool = True,
    eager_attention: bool = False,
    overhead: float = 1.0,
) -> float:
    """Activations of one training step: every layer's saved tensors (or checkpoints + one layer) and the logits.

    ``overhead=CPU_ACTIVATION_OVERHEAD`` gives what a CPU process really holds for them (see the module docstring).
    """
    per_layer = saved_floats_per_token_layer(shape, mode, lora_rank=lora_rank, lora_targets=lora_targets,
                                             lora_dropout=lora_dropout)  # fmt: skip
    scores = attention_scores_bytes(shape, batch_size, seq_len, bytes_per_value) if eager_attention else 0.0
    if gradient_checkpointing:  # every layer's input, and one layer recomputed at a time
        saved = shape.num_layers * shape.hidden_size + per_layer
        if mode in ("lora", "qlora"):  # and a float per adapted input width in every layer (module docstring)
            saved += shape.num_layers * sum(lora_inputs(shape, lora_targets))
        scores /= shape.num_layers
    else:
        saved = shape.num_layers * per_layer
    counted = batch_size * seq_len * saved * bytes_per_value + scores + logits_bytes(shape, batch_size, seq_len)
    return overhead * counted
