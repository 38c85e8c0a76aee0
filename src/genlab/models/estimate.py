"""Memory and compute estimates: will a model fit, and what would training or serving it cost?

Pure arithmetic on a parameter count Ψ and, when known, the architecture's shape; nothing is loaded.
GB means 1e9 bytes. Two rules for activations, and the estimate says which one it used:

- **shape** (the architecture is known): activations from the tensors a training step keeps for the
  given batch and sequence length, the logits over the vocabulary and their gradient, gradient
  checkpointing -- see :mod:`genlab.models.estimate_activations`;
- **8 bytes per parameter** (only a parameter count is known): the course's high-end rule of thumb
  ("Generative AI with LLMs", week 1), so ``--params 1e9 --mode train`` in fp32 stays
  4 + 8 + 4 + 8 = 24 GB.

Weights (course week 1: 1B params take 4 GB in fp32, 2 GB in fp16/bf16, 1 GB in int8)::

    weights = Ψ × BYTES_PER_PARAM[dtype]

Full training: fp32 weights, gradients and AdamW's two fp32 states take 4 + 4 + 8 B/param; in mixed
precision (fp16/bf16; ZeRO, Rajbhandari et al. 2020, §3.1) 2Ψ + 2Ψ + KΨ with K = 12 (fp32 master
weights, momentum, variance). 8-bit Adam (Dettmers et al. 2022, block-wise quantisation) keeps each
state in 1 byte: 8 B/param of states become 2. LoRA (Hu et al. 2021) trains ``r × (d_in + d_out)``
params per adapted matrix, prompt tuning (Lester et al. 2021) ``virtual_tokens × hidden``; only those
get gradients and optimizer states (fp32, 4 + 4 + 8 B). QLoRA (Dettmers et al. 2023) stores the frozen
base in NF4, 4 bits + 0.127 bits of double-quantised constants per param (§3).

Serving: the KV cache, 2 × layers × batch × tokens × KV heads × head_dim × bytes (an int8/int4 model
still caches in fp16); on CPU genlab's engine also holds a reordered copy of every fp32 Linear weight
(:mod:`genlab.generation.packed_linear`), grows its cache by half again when it fills
(:mod:`genlab.generation.growing_cache`), and runs prefill over the whole prompt at once.

The process on CPU (``process_peak_gb``, what ``--measure`` compares with the peak resident memory):
the work above, shape-based activations times the allocator overhead measured on CPU (1.4, see
:mod:`genlab.models.estimate_activations`), plus the interpreter, torch, transformers and peft once imported,
``FRAMEWORK_CPU_BYTES`` (measured once here: 0.57 GB, ``python -c "import torch, transformers, peft"``
plus genlab's model and generation modules, VmHWM, torch 2.13 CPU, transformers 5.25). A GPU's memory
does not hold those, so ``train_total_gb`` / ``infer_total_gb`` / ``per_gpu_gb`` leave them out.

ZeRO over N GPUs: stage 1 shards the optimizer states, 2 also the gradients, 3 also the parameters;
activations are not sharded::

    per_gpu = weights/N₃ + gradients/N₂ + optimizer/N₁ + activations,  Nₛ = N if stage ≥ s else 1

Beside published tables (on paper; no GPU here):

- LLaMA-Factory's hardware table (README, "Hardware Requirement", estimated, no activations):
  full AMP ``18x`` GB for x B params, pure bf16 ``8x``, LoRA 16-bit ``2x``, QLoRA 4-bit ``x/2``.
  Here: mixed precision 16x (2 + 2 + 12; LLaMA-Factory also counts fp32 gradients, +2), pure-bf16
  is not modelled (states kept in fp32), LoRA 16-bit 2x + adapters (7B, r=8 on q, v: 14.0 GB + 0.07 GB
  vs 16 GB), QLoRA 0.52x (3.6 GB for 7B vs 6 GB: their figure includes a margin for activations).
- DeepSpeed's ZeRO estimators (``deepspeed.runtime.zero``, model states only, no offload):
  stage 2 ``4Ψ + 16Ψ/N`` (fp16 params and fp16 gradient buckets kept whole), here ``2Ψ + 14Ψ/N``;
  stage 3 ``4 × largest layer + 18Ψ/N`` (a gathered layer and an fp32 gradient copy), here ``16Ψ/N``.
  For Ψ = 7.5B on 64 GPUs: stage 2 31.9 GB there, 16.6 GB here (the ZeRO paper's Figure 1 figure);
  stage 3 2.1 GB + a layer there, 1.9 GB here. DeepSpeed's figures are its implementation's buffers;
  these are the paper's model states.

Compute: Chinchilla (Hoffmann et al. 2022) trains compute-optimally on D ≈ 20 × Ψ tokens; training
costs C ≈ 6·Ψ·D FLOPs (Kaplan et al. 2020). 1 petaflop/s-day = 8.64e19 FLOPs. Wall-clock seconds =
C / (gpus × peak FLOP/s × utilization).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from genlab.errors import invalid_value
from genlab.models.card import ArchitectureShape
from genlab.models.estimate_activations import CPU_ACTIVATION_OVERHEAD, training_activation_bytes
from genlab.models.estimate_serving import serving_extra_bytes

Dtype = Literal["fp32", "fp16", "bf16", "int8", "int4"]
Mode = Literal["infer", "train", "lora", "qlora", "prompt-tuning"]
LoraTargets = Literal["attention", "all-linear"]
Optimizer = Literal["adamw", "adamw-8bit"]

BYTES_PER_PARAM: dict[str, float] = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1, "int4": 0.5}
FULL_TRAINING_BYTES: dict[str, tuple[float, float, float]] = {  # (weights, gradients, optimizer)/param
    "fp32": (4, 4, 8),  # course week 1: Adam's momentum and variance, 4 B each
    "fp16": (2, 2, 12),  # ZeRO §3.1 mixed precision: K = 12 (fp32 master weights + momentum + variance)
    "bf16": (2, 2, 12),
}
ADAM_STATES_BYTES = {"adamw": 8, "adamw-8bit": 2}  # two states, fp32 or 8-bit (Dettmers et al. 2022)
ADAPTER_BYTES = (4, 4)  # adapters (LoRA, soft prompts) train in fp32: weights, gradients
NF4_BYTES_PER_PARAM = 0.5 + 0.127 / 8  # QLoRA §3: 4-bit weights + double-quantised constants
QUANTISED_KV_BYTES = 2  # int8/int4 weights still keep an fp16 KV cache
FRAMEWORK_CPU_BYTES = 0.57e9  # interpreter + torch + transformers + peft + genlab, measured once (see above)
CHINCHILLA_TOKENS_PER_PARAM = 20  # Hoffmann et al. 2022
TRAIN_FLOPS_PER_PARAM_TOKEN = 6  # Kaplan et al. 2020
PETAFLOP_S_DAY = 1e15 * 86_400  # FLOPs
GB = 1e9
RULE_SHAPE = "shape"
RULE_PER_PARAM = "8 bytes per parameter"


class EstimateRequest(BaseModel):
    """What to estimate. Building one with a bad value raises :class:`genlab.errors.InvalidValueError`."""

    model_config = ConfigDict(extra="forbid")

    params: float  # total parameters Ψ of the base model
    mode: Mode = "infer"  # declared before dtype so the dtype check can see it
    dtype: Dtype = "fp32"  # weights at inference and in training; in qlora, the adapters' compute dtype
    batch_size: int = Field(default=1, ge=1)
    seq_len: int = Field(default=2048, ge=1)  # tokens per sequence: trained on, or prompt + answer served
    gpus: int = Field(default=1, ge=1)
    zero_stage: Literal[0, 1, 2, 3] = 0  # 0 = plain data parallel
    lora_rank: int = Field(default=8, ge=1)  # peft's default r
    lora_targets: LoraTargets = "attention"  # q and v, peft's default for llama
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)  # > 0 keeps a dropped-out copy of each adapted input
    virtual_tokens: int = Field(default=20, ge=1)  # prompt tuning's soft prompt length
    gradient_checkpointing: bool = False
    optimizer: Optimizer = "adamw"
    shape: ArchitectureShape | None = Field(default=None, validate_default=True)
    tokens: float | None = Field(default=None, gt=0)  # training tokens; None = Chinchilla 20 × params
    gpu_peak_tflops: float = Field(default=312, gt=0)  # A100 bf16 dense tensor-core peak
    utilization: float = Field(default=0.4, gt=0, le=1)  # model FLOPs utilization actually reached
    # None: from the shape when it is known, else the course's 8 B/param; a number forces the per-param rule
    activation_bytes_per_param: float | None = Field(default=None, ge=0)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise invalid_value(error, prefix="estimate") from None

    @field_validator("params")
    @classmethod
    def _positive_params(cls, params: float) -> float:
        if not (math.isfinite(params) and params > 0):
            raise ValueError("it must be a positive number of parameters")
        return params

    @field_validator("dtype")
    @classmethod
    def _dtype_fits_mode(cls, dtype: str, info: ValidationInfo) -> str:
        mode, integer = info.data.get("mode"), dtype in ("int8", "int4")
        if mode in ("train", "lora", "prompt-tuning") and integer:
            raise ValueError(f"training in {dtype} is not supported; use --mode qlora (4-bit base + adapters)")
        if mode == "qlora" and integer:
            raise ValueError("qlora's base is int4 already; dtype is the adapters' compute dtype: fp32, fp16 or bf16")
        return dtype

    @field_validator("shape")
    @classmethod
    def _shape_for_adapters(cls, shape: ArchitectureShape | None, info: ValidationInfo) -> ArchitectureShape | None:
        mode = info.data.get("mode")
        if shape is None and mode in ("lora", "qlora"):
            raise ValueError("LoRA estimates need the architecture: pass --model NAME whose card has a shape")
        if shape is None and mode == "prompt-tuning":
            raise ValueError("prompt-tuning estimates need the architecture: pass --model NAME whose card has a shape")
        return shape

    @property
    def activation_rule(self) -> str:
        return RULE_SHAPE if self.shape is not None and self.activation_bytes_per_param is None else RULE_PER_PARAM


@dataclass(frozen=True)
class Estimate:
    """Memory in GB (1e9 bytes), parameter counts, and training compute for one request."""

    mode: str
    dtype: str
    gpus: int
    zero_stage: int
    batch_size: int
    seq_len: int
    lora_rank: int
    lora_targets: str
    gradient_checkpointing: bool
    optimizer: str
    gpu_peak_tflops: float
    utilization: float
    shape_known: bool  # False: the KV cache could not be estimated and is reported as 0
    activation_rule: str  # "shape" or "8 bytes per parameter"
    weights_gb: float  # the (frozen, in lora/qlora/prompt-tuning) base weights
    adapter_weights_gb: float  # LoRA A and B matrices or the soft prompt, fp32
    kv_cache_gb: float
    infer_total_gb: float  # weights + KV cache
    optimizer_gb: float
    gradients_gb: float
    activations_gb: float
    train_total_gb: float  # 0 for inference
    per_gpu_gb: float
    serving_extra_gb: float  # CPU engine: reordered weights, cache headroom, prefill (0 when training)
    framework_gb: float  # interpreter and libraries on CPU
    process_peak_gb: float  # the whole CPU process: the work, its allocator overhead, serving extras, framework
    trainable_params: int
    total_params: int  # base + adapters, as peft's print_trainable_parameters counts them
    trainable_percent: float
    chinchilla_tokens: float
    tokens: float
    train_flops: float
    petaflop_s_days: float
    wall_clock_hours: float  # on `gpus` GPUs working together
    gpu_hours: float  # summed over the GPUs (what a cloud bill counts): wall_clock_hours × gpus
    train_days: float  # wall-clock days on `gpus` GPUs

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_ECHOED_FIELDS = {  # copied from the request into the estimate as they are
    *("mode", "dtype", "gpus", "zero_stage", "batch_size", "seq_len", "lora_rank", "lora_targets"),
    *("gradient_checkpointing", "optimizer", "gpu_peak_tflops", "utilization"),
}


def lora_trainable_params(d_out: int, d_in: int, rank: int) -> int:
    """Trainable params LoRA adds to one d_out×d_in weight: B (d_out×r) plus A (r×d_in)."""
    return rank * (d_in + d_out)


def lora_target_matrices(shape: ArchitectureShape, targets: LoraTargets) -> dict[str, tuple[int, int]]:
    """The (d_out, d_in) of each weight LoRA adapts in one transformer layer."""
    hidden, kv_width, mlp = shape.hidden_size, shape.num_kv_heads * shape.attention_head_dim, shape.intermediate_size
    q_width = shape.num_heads * shape.attention_head_dim
    if targets == "attention":
        return {"q": (q_width, hidden), "v": (kv_width, hidden)}
    matrices = {"q": (q_width, hidden), "k": (kv_width, hidden), "v": (kv_width, hidden), "o": (hidden, q_width)}
    if shape.gated_mlp:
        matrices["gate"] = (mlp, hidden)
    return {**matrices, "up": (mlp, hidden), "down": (hidden, mlp)}


def lora_trainable_params_for_model(shape: ArchitectureShape, rank: int, targets: LoraTargets) -> int:
    matrices = lora_target_matrices(shape, targets).values()
    return shape.num_layers * sum(lora_trainable_params(d_out, d_in, rank) for d_out, d_in in matrices)


def kv_cache_bytes(shape: ArchitectureShape, batch_size: int, seq_len: int, dtype: str) -> float:
    bytes_per_value = BYTES_PER_PARAM[dtype] if dtype in FULL_TRAINING_BYTES else QUANTISED_KV_BYTES
    return 2 * shape.num_layers * batch_size * seq_len * shape.num_kv_heads * shape.attention_head_dim * bytes_per_value


@dataclass(frozen=True)
class _Memory:
    """Bytes of each part of the memory of one run, before any ZeRO sharding."""

    weights: float
    adapters: float = 0
    gradients: float = 0
    optimizer: float = 0
    activations: float = 0
    trainable: int = 0

    @property
    def total(self) -> float:
        return self.weights + self.adapters + self.gradients + self.optimizer + self.activations

    def per_gpu(self, zero_stage: int, gpus: int) -> float:
        def shard(stage: int) -> int:
            return gpus if zero_stage >= stage else 1

        parameters = self.weights + self.adapters
        return parameters / shard(3) + self.gradients / shard(2) + self.optimizer / shard(1) + self.activations


def _activations(request: EstimateRequest) -> float:
    """Training activations by the request's rule (see the module docstring)."""
    if request.activation_rule == RULE_PER_PARAM:
        per_param = 8.0 if request.activation_bytes_per_param is None else request.activation_bytes_per_param
        return request.params * per_param
    assert request.shape is not None  # the rule is "shape" only with a shape
    compute_bytes = BYTES_PER_PARAM[request.dtype]  # qlora's dtype is the compute dtype
    seq_len = request.seq_len + (request.virtual_tokens if request.mode == "prompt-tuning" else 0)
    return training_activation_bytes(
        request.shape, request.mode, request.batch_size, seq_len, compute_bytes,
        gradient_checkpointing=request.gradient_checkpointing, lora_rank=request.lora_rank,
        lora_targets=request.lora_targets, lora_dropout=request.lora_dropout > 0,
    )  # fmt: skip


def _infer_memory(request: EstimateRequest) -> _Memory:
    return _Memory(weights=request.params * BYTES_PER_PARAM[request.dtype])


def _train_memory(request: EstimateRequest) -> _Memory:
    weights, gradients, optimizer = FULL_TRAINING_BYTES[request.dtype]
    optimizer += ADAM_STATES_BYTES[request.optimizer] - ADAM_STATES_BYTES["adamw"]
    params = request.params  # every parameter is trained
    return _Memory(
        weights=params * weights,
        gradients=params * gradients,
        optimizer=params * optimizer,
        activations=_activations(request),
        trainable=round(params),
    )


def _adapter_memory(request: EstimateRequest, base_bytes_per_param: float) -> _Memory:
    assert request.shape is not None  # the request's validator guarantees it
    if request.mode == "prompt-tuning":
        trainable = request.virtual_tokens * request.shape.hidden_size  # peft's PromptEmbedding
    else:
        trainable = lora_trainable_params_for_model(request.shape, request.lora_rank, request.lora_targets)
    weights, gradients = ADAPTER_BYTES
    return _Memory(
        weights=request.params * base_bytes_per_param,
        adapters=trainable * weights,
        gradients=trainable * gradients,
        optimizer=trainable * ADAM_STATES_BYTES[request.optimizer],
        activations=_activations(request),
        trainable=trainable,
    )


_MEMORY_BY_MODE = {
    "infer": _infer_memory,
    "train": _train_memory,
    "lora": lambda request: _adapter_memory(request, BYTES_PER_PARAM[request.dtype]),
    "prompt-tuning": lambda request: _adapter_memory(request, BYTES_PER_PARAM[request.dtype]),
    "qlora": lambda request: _adapter_memory(request, NF4_BYTES_PER_PARAM),
}


def estimate(request: EstimateRequest) -> Estimate:
    """Memory for the request's mode, and the compute of training the model on ``tokens`` tokens."""
    memory = _MEMORY_BY_MODE[request.mode](request)
    shape = request.shape
    kv_cache = kv_cache_bytes(shape, request.batch_size, request.seq_len, request.dtype) if shape else 0.0
    infer_total = memory.weights + kv_cache
    training = request.mode != "infer"
    adapter_params = memory.trainable if request.mode in ("lora", "qlora", "prompt-tuning") else 0
    serving_extra = 0.0
    if not training and shape is not None:
        serving_extra = serving_extra_bytes(shape, request.batch_size, request.seq_len, request.dtype, kv_cache)
    allocator = (CPU_ACTIVATION_OVERHEAD - 1) * memory.activations if request.activation_rule == RULE_SHAPE else 0.0
    process = (memory.total + allocator if training else infer_total + serving_extra) + FRAMEWORK_CPU_BYTES

    chinchilla_tokens = CHINCHILLA_TOKENS_PER_PARAM * request.params
    tokens = request.tokens if request.tokens is not None else chinchilla_tokens
    flops = TRAIN_FLOPS_PER_PARAM_TOKEN * request.params * tokens
    seconds = flops / (request.gpus * request.gpu_peak_tflops * 1e12 * request.utilization)
    return Estimate(
        **request.model_dump(include=_ECHOED_FIELDS),
        shape_known=shape is not None,
        activation_rule=request.activation_rule,
        weights_gb=memory.weights / GB,
        adapter_weights_gb=memory.adapters / GB,
        kv_cache_gb=kv_cache / GB,
        infer_total_gb=infer_total / GB,
        optimizer_gb=memory.optimizer / GB,
        gradients_gb=memory.gradients / GB,
        activations_gb=memory.activations / GB,
        train_total_gb=memory.total / GB if training else 0.0,
        per_gpu_gb=(memory.per_gpu(request.zero_stage, request.gpus) if training else infer_total) / GB,
        serving_extra_gb=serving_extra / GB,
        framework_gb=FRAMEWORK_CPU_BYTES / GB,
        process_peak_gb=process / GB,
        trainable_params=memory.trainable,
        total_params=round(request.params) + adapter_params,
        trainable_percent=100 * memory.trainable / (request.params + adapter_params),
        chinchilla_tokens=chinchilla_tokens,
        tokens=tokens,
        train_flops=flops,
        petaflop_s_days=flops / PETAFLOP_S_DAY,
        wall_clock_hours=seconds / 3600,
        gpu_hours=seconds * request.gpus / 3600,
        train_days=seconds / 86_400,
    )
