"""Memory and compute estimates: will a model fit, and what would training it cost?

Pure arithmetic on a parameter count Ψ (and, when known, the architecture's dims); nothing is loaded.
GB means 1e9 bytes. The formulas, each with its source:

Weights (course "Generative AI with LLMs", week 1: 1B params take 4 GB in fp32, 2 GB in fp16/bf16,
1 GB in int8)::

    weights = Ψ × BYTES_PER_PARAM[dtype]

KV cache at inference: each layer keeps one key and one value vector per KV head for every token
(grouped-query attention, Ainslie et al. 2023, shares them across query heads). An int8/int4 model
still keeps its cache in fp16. 0 when the architecture is unknown::

    kv_cache = 2 × num_layers × batch × seq_len × num_kv_heads × head_dim × bytes
    infer_total = weights + kv_cache

Full training (course week 1, "additional GPU RAM needed to train 1B parameters"): in fp32 the
weights take 4 B/param, Adam's two states 8 B, gradients 4 B, activations and temporaries
``activation_bytes_per_param`` (default 8) B: 24 B/param, about 6× the weights. In mixed precision
(fp16/bf16; ZeRO, Rajbhandari et al. 2020, §3.1) the model states are 2Ψ + 2Ψ + KΨ with K = 12
(fp32 master weights, momentum and variance)::

    train_total = weights + gradients + optimizer + activation_bytes_per_param × Ψ

LoRA (Hu et al. 2021): a frozen d_out×d_in weight gets trainable A (r×d_in) and B (d_out×r), so
``r × (d_in + d_out)`` trainable params. "attention" targets q and v (peft's default for llama),
"all-linear" targets q, k, v, o and the MLP. The frozen base needs no gradients or optimizer states;
the adapters are kept in fp32 with fp32 gradients and Adam states (4 + 4 + 8 B/param). LoRA saves
optimizer and gradient memory, not activation memory: activations still flow through the whole base
model, so they are counted on Ψ as in full training.

QLoRA (Dettmers et al. 2023): the frozen base is NF4, 4 bits = 0.5 B/param, plus its quantisation
constants, 0.127 bits/param after double quantisation (§3); ``dtype`` is then the adapters' compute
dtype. Adapters are counted as in LoRA. (Real QLoRA keeps embeddings and the LM head in 16 bits;
this estimate quantises all of Ψ.)

ZeRO over N GPUs (Rajbhandari et al. 2020): stage 1 shards the optimizer states (/N), stage 2 also
the gradients, stage 3 also the parameters; activations are not sharded. Stage 0 is plain data
parallelism: every GPU holds everything. Inference is not sharded::

    per_gpu = weights/N₃ + gradients/N₂ + optimizer/N₁ + activations,  Nₛ = N if stage ≥ s else 1

Compute: Chinchilla (Hoffmann et al. 2022) trains compute-optimally on D ≈ 20 × Ψ tokens; training
costs C ≈ 6·Ψ·D FLOPs (Kaplan et al. 2020: 2 forward + 4 backward per param per token; for LoRA it
is an upper bound, frozen weights skip their weight-gradient matmuls). 1 petaflop/s-day =
1e15 × 86,400 = 8.64e19 FLOPs. Wall-clock seconds = C / (gpus × peak FLOP/s × utilization).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from genlab.errors import invalid_value
from genlab.models.card import ArchitectureShape

Dtype = Literal["fp32", "fp16", "bf16", "int8", "int4"]
Mode = Literal["infer", "train", "lora", "qlora"]
LoraTargets = Literal["attention", "all-linear"]

BYTES_PER_PARAM: dict[str, float] = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1, "int4": 0.5}
FULL_TRAINING_BYTES: dict[str, tuple[float, float, float]] = {  # (weights, gradients, optimizer)/param
    "fp32": (4, 4, 8),  # course week 1: Adam's momentum and variance, 4 B each
    "fp16": (2, 2, 12),  # ZeRO §3.1 mixed precision: K = 12 (fp32 master weights + momentum + variance)
    "bf16": (2, 2, 12),
}
ADAPTER_BYTES = (4, 4, 8)  # LoRA adapters train in fp32: weights, gradients, Adam states
NF4_BYTES_PER_PARAM = 0.5 + 0.127 / 8  # QLoRA §3: 4-bit weights + double-quantised constants
QUANTISED_KV_BYTES = 2  # int8/int4 weights still keep an fp16 KV cache
CHINCHILLA_TOKENS_PER_PARAM = 20  # Hoffmann et al. 2022
TRAIN_FLOPS_PER_PARAM_TOKEN = 6  # Kaplan et al. 2020
PETAFLOP_S_DAY = 1e15 * 86_400  # FLOPs
GB = 1e9
GATED_MLP_MODEL_TYPES = {"llama", "qwen2", "qwen3", "mistral", "gemma", "gemma2", "gemma3_text", "phi3", "smollm3"}


class EstimateRequest(BaseModel):
    """What to estimate. Building one with a bad value raises :class:`genlab.errors.InvalidValueError`."""

    model_config = ConfigDict(extra="forbid")

    params: float  # total parameters Ψ of the base model
    mode: Mode = "infer"  # declared before dtype so the dtype check can see it
    dtype: Dtype = "fp32"  # weights at inference and in training; in qlora, the adapters' compute dtype
    batch_size: int = Field(default=1, ge=1)
    seq_len: int = Field(default=2048, ge=1)  # tokens per sequence (KV cache length at inference)
    gpus: int = Field(default=1, ge=1)
    zero_stage: Literal[0, 1, 2, 3] = 0  # 0 = plain data parallel
    lora_rank: int = Field(default=8, ge=1)  # peft's default r
    lora_targets: LoraTargets = "attention"  # q and v, peft's default for llama
    shape: ArchitectureShape | None = Field(default=None, validate_default=True)
    tokens: float | None = Field(default=None, gt=0)  # training tokens; None = Chinchilla 20 × params
    gpu_peak_tflops: float = Field(default=312, gt=0)  # A100 bf16 dense tensor-core peak
    utilization: float = Field(default=0.4, gt=0, le=1)  # model FLOPs utilization actually reached
    activation_bytes_per_param: float = Field(default=8, ge=0)  # the course's high-end rule of thumb

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
        if mode == "train" and integer:
            raise ValueError(f"full training in {dtype} is not supported; use --mode qlora (4-bit base + adapters)")
        if mode == "qlora" and integer:
            raise ValueError("qlora's base is int4 already; dtype is the adapters' compute dtype: fp32, fp16 or bf16")
        return dtype

    @field_validator("shape")
    @classmethod
    def _shape_for_lora(cls, shape: ArchitectureShape | None, info: ValidationInfo) -> ArchitectureShape | None:
        if shape is None and info.data.get("mode") in ("lora", "qlora"):
            raise ValueError("LoRA estimates need the architecture: pass --model NAME whose card has a shape")
        return shape


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
    gpu_peak_tflops: float
    utilization: float
    shape_known: bool  # False: the KV cache could not be estimated and is reported as 0
    weights_gb: float  # the (frozen, in lora/qlora) base weights
    adapter_weights_gb: float  # LoRA A and B matrices, fp32
    kv_cache_gb: float
    infer_total_gb: float
    optimizer_gb: float
    gradients_gb: float
    activations_gb: float
    train_total_gb: float  # 0 for inference
    per_gpu_gb: float
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
    *("gpu_peak_tflops", "utilization"),
}


def lora_trainable_params(d_out: int, d_in: int, rank: int) -> int:
    """Trainable params LoRA adds to one d_out×d_in weight: B (d_out×r) plus A (r×d_in)."""
    return rank * (d_in + d_out)


def lora_target_matrices(shape: ArchitectureShape, targets: LoraTargets) -> dict[str, tuple[int, int]]:
    """The (d_out, d_in) of each weight LoRA adapts in one transformer layer."""
    hidden, kv_width, mlp = shape.hidden_size, shape.num_kv_heads * shape.attention_head_dim, shape.intermediate_size
    if targets == "attention":
        return {"q": (hidden, hidden), "v": (kv_width, hidden)}
    matrices = {"q": (hidden, hidden), "k": (kv_width, hidden), "v": (kv_width, hidden), "o": (hidden, hidden)}
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


def _infer_memory(request: EstimateRequest) -> _Memory:
    return _Memory(weights=request.params * BYTES_PER_PARAM[request.dtype])


def _train_memory(request: EstimateRequest) -> _Memory:
    weights, gradients, optimizer = FULL_TRAINING_BYTES[request.dtype]
    params = request.params  # every parameter is trained
    return _Memory(
        weights=params * weights,
        gradients=params * gradients,
        optimizer=params * optimizer,
        activations=params * request.activation_bytes_per_param,
        trainable=round(params),
    )


def _adapter_memory(request: EstimateRequest, base_bytes_per_param: float) -> _Memory:
    assert request.shape is not None  # the request's validator guarantees it
    trainable = lora_trainable_params_for_model(request.shape, request.lora_rank, request.lora_targets)
    weights, gradients, optimizer = ADAPTER_BYTES
    return _Memory(
        weights=request.params * base_bytes_per_param,
        adapters=trainable * weights,
        gradients=trainable * gradients,
        optimizer=trainable * optimizer,
        activations=request.params * request.activation_bytes_per_param,
        trainable=trainable,
    )


_MEMORY_BY_MODE = {
    "infer": _infer_memory,
    "train": _train_memory,
    "lora": lambda request: _adapter_memory(request, BYTES_PER_PARAM[request.dtype]),
    "qlora": lambda request: _adapter_memory(request, NF4_BYTES_PER_PARAM),
}


def estimate(request: EstimateRequest) -> Estimate:
    """Memory for the request's mode, and the compute of training the model on ``tokens`` tokens."""
    memory = _MEMORY_BY_MODE[request.mode](request)
    shape = request.shape
    kv_cache = kv_cache_bytes(shape, request.batch_size, request.seq_len, request.dtype) if shape else 0.0
    infer_total = memory.weights + kv_cache
    training = request.mode != "infer"
    adapter_params = memory.trainable if request.mode in ("lora", "qlora") else 0

    chinchilla_tokens = CHINCHILLA_TOKENS_PER_PARAM * request.params
    tokens = request.tokens if request.tokens is not None else chinchilla_tokens
    flops = TRAIN_FLOPS_PER_PARAM_TOKEN * request.params * tokens
    seconds = flops / (request.gpus * request.gpu_peak_tflops * 1e12 * request.utilization)
    return Estimate(
        **request.model_dump(include=_ECHOED_FIELDS),
        shape_known=shape is not None,
        weights_gb=memory.weights / GB,
        adapter_weights_gb=memory.adapters / GB,
        kv_cache_gb=kv_cache / GB,
        infer_total_gb=infer_total / GB,
        optimizer_gb=memory.optimizer / GB,
        gradients_gb=memory.gradients / GB,
        activations_gb=memory.activations / GB,
        train_total_gb=memory.total / GB if training else 0.0,
        per_gpu_gb=(memory.per_gpu(request.zero_stage, request.gpus) if training else infer_total) / GB,
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


def _gb(value: float) -> str:
    return f"{value:.2f} GB" if value >= 0.1 or value == 0 else f"{value * 1000:.3g} MB"


def _count(n: float) -> str:
    for suffix, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{suffix}"
    return f"{n:.0f}"


def _duration(hours: float) -> str:
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def format_estimate(est: Estimate) -> list[tuple[str, str]]:
    """Rows of (label, value) for a person to read, in the order a table should show them."""
    rows = [("mode", est.mode), ("dtype", est.dtype), ("parameters", _count(est.total_params))]
    rows.append(("weights", _gb(est.weights_gb)))
    kv_label = f"KV cache ({est.batch_size} × {est.seq_len} tokens)"
    rows.append((kv_label, _gb(est.kv_cache_gb) if est.shape_known else "unknown (no architecture shape)"))
    rows.append(("inference total", _gb(est.infer_total_gb)))
    if est.mode != "infer":
        if est.mode in ("lora", "qlora"):
            rows.append(("LoRA adapters", f"rank {est.lora_rank} on {est.lora_targets}, {_gb(est.adapter_weights_gb)}"))
        rows.append(("trainable parameters", f"{est.trainable_params:,} ({est.trainable_percent:.4g}%)"))
        rows += [("optimizer states", _gb(est.optimizer_gb)), ("gradients", _gb(est.gradients_gb))]
        rows += [("activations", _gb(est.activations_gb)), ("training total", _gb(est.train_total_gb))]
    plural = "s" if est.gpus > 1 else ""
    sharding = f"ZeRO-{est.zero_stage} over {est.gpus} GPU{plural}" if est.mode != "infer" else "not sharded"
    rows.append((f"per GPU ({sharding})", _gb(est.per_gpu_gb)))
    rows.append(("training tokens", f"{_count(est.tokens)} (Chinchilla-optimal: {_count(est.chinchilla_tokens)})"))
    rows.append(("training compute", f"{est.train_flops:.3g} FLOPs = {est.petaflop_s_days:.3g} petaflop/s-days"))
    speed = f"{est.gpu_peak_tflops:g} TFLOP/s at {est.utilization:.0%}"
    rows.append(("training time", f"{_duration(est.wall_clock_hours)} on {est.gpus} GPU{plural} ({speed})"))
    rows.append(("GPU-hours", f"{est.gpu_hours:,.0f}" if est.gpu_hours >= 10 else f"{est.gpu_hours:.2g}"))
    return rows


def estimate_for(*, params: float | None = None, model: str | None = None, **settings: Any) -> Estimate:
    """Estimate for a parameter count, or for a catalog model (which also gives the architecture)."""
    from genlab.errors import InvalidValueError

    if (params is None) == (model is None):
        raise InvalidValueError("estimate: pass exactly one of --params N or --model NAME.")
    shape = None
    if model is not None:
        from genlab.models.catalog import get_card

        card = get_card(model)
        if card.params is None:
            raise InvalidValueError(f"estimate: the card of {model!r} has no parameter count; pass --params.")
        params, shape = card.params, card.shape
    return estimate(EstimateRequest(params=params, shape=shape, **settings))
