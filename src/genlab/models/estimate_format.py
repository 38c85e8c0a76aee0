"""An :class:`~genlab.models.estimate.Estimate` as rows of (label, value) for a person to read."""

from __future__ import annotations

from genlab.models.estimate import Estimate


def _gb(value: float) -> str:
    return f"{value:.2f} GB" if value >= 0.1 or value == 0 else f"{value * 1000:.3g} MB"


def _count(n: float) -> str:
    for suffix, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{suffix}"
    return f"{n:.0f}"


def _duration(hours: float) -> str:
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def _activation_rule(est: Estimate) -> str:
    if est.activation_rule == "shape":
        checkpointing = ", gradient checkpointing" if est.gradient_checkpointing else ""
        return f"from the shape: {est.batch_size} × {est.seq_len} tokens, saved tensors and logits{checkpointing}"
    return "8 bytes per parameter (the course's rule; pass --model for the shape-based estimate)"


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
        if est.mode == "prompt-tuning":
            rows.append(("soft prompt", _gb(est.adapter_weights_gb)))
        rows.append(("trainable parameters", f"{est.trainable_params:,} ({est.trainable_percent:.4g}%)"))
        rows += [(f"optimizer states ({est.optimizer})", _gb(est.optimizer_gb)), ("gradients", _gb(est.gradients_gb))]
        rows += [("activations", _gb(est.activations_gb)), ("activation rule", _activation_rule(est))]
        rows.append(("training total", _gb(est.train_total_gb)))
    elif est.serving_extra_gb:
        rows.append(("engine extras on CPU", f"{_gb(est.serving_extra_gb)} (reordered weights, cache room, prefill)"))
    plural = "s" if est.gpus > 1 else ""
    sharding = f"ZeRO-{est.zero_stage} over {est.gpus} GPU{plural}" if est.mode != "infer" else "not sharded"
    rows.append((f"per GPU ({sharding})", _gb(est.per_gpu_gb)))
    rows.append(("process peak on CPU", f"{_gb(est.process_peak_gb)} (with {_gb(est.framework_gb)} of interpreter and libraries)"))
    rows.append(("training tokens", f"{_count(est.tokens)} (Chinchilla-optimal: {_count(est.chinchilla_tokens)})"))
    rows.append(("training compute", f"{est.train_flops:.3g} FLOPs = {est.petaflop_s_days:.3g} petaflop/s-days"))
    speed = f"{est.gpu_peak_tflops:g} TFLOP/s at {est.utilization:.0%}"
    rows.append(("training time", f"{_duration(est.wall_clock_hours)} on {est.gpus} GPU{plural} ({speed})"))
    rows.append(("GPU-hours", f"{est.gpu_hours:,.0f}" if est.gpu_hours >= 10 else f"{est.gpu_hours:.2g}"))
    return rows
