"""`genlab estimate`: memory and compute before choosing a model; `--measure` checks it against a real run."""

from __future__ import annotations

from typing import Annotated

import typer

from genlab.cli.output import print_json, print_pairs
from genlab.errors import InvalidValueError
from genlab.models.estimate_format import format_estimate
from genlab.models.estimate_lookup import estimate_for
from genlab.peak_memory.measure import measure_peak, workload_for


def estimate_command(
    params: Annotated[float | None, typer.Option(help="Parameter count, e.g. 1e9 (or use --model).")] = None,
    model: Annotated[str | None, typer.Option(help="A catalog name; gives params and the architecture.")] = None,
    dtype: Annotated[str, typer.Option(help="fp32, fp16, bf16, int8 or int4.")] = "fp32",
    mode: Annotated[str, typer.Option(help="infer, train, lora, qlora or prompt-tuning.")] = "infer",
    batch_size: Annotated[int, typer.Option(help="Sequences per batch.")] = 1,
    seq_len: Annotated[int, typer.Option(help="Tokens per sequence (trained on, or prompt + answer served).")] = 2048,
    gradient_checkpointing: Annotated[bool, typer.Option(help="Keep one input per layer, recompute the rest.")] = False,
    optimizer: Annotated[str, typer.Option(help="adamw (fp32 states) or adamw-8bit.")] = "adamw",
    gpus: Annotated[int, typer.Option(help="GPUs to shard over (ZeRO) and to time training on.")] = 1,
    zero: Annotated[int, typer.Option(help="ZeRO stage 0-3 (0: plain data parallel).")] = 0,
    lora_rank: Annotated[int, typer.Option(help="LoRA rank r.")] = 8,
    lora_targets: Annotated[str, typer.Option(help="attention (q, v) or all-linear.")] = "attention",
    lora_dropout: Annotated[float, typer.Option(help="LoRA dropout (> 0 keeps a copy of each adapted input).")] = 0.05,
    virtual_tokens: Annotated[int, typer.Option(help="Prompt tuning: soft prompt length.")] = 20,
    tokens: Annotated[float | None, typer.Option(help="Training tokens (default: Chinchilla, 20 per parameter).")] = None,
    gpu_tflops: Annotated[float, typer.Option(help="Peak TFLOP/s of one GPU (A100 bf16: 312).")] = 312,
    utilization: Annotated[float, typer.Option(help="Fraction of peak reached (0-1].")] = 0.4,
    activation_bytes: Annotated[
        float | None, typer.Option(help="Force the per-parameter rule: activation bytes per parameter.")
    ] = None,
    measure: Annotated[bool, typer.Option(help="Also run 3 training steps (or a generation) and show its peak.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Estimate memory (inference, full training, LoRA/QLoRA/prompt tuning, ZeRO) and training compute."""
    result = estimate_for(
        params=params, model=model, dtype=dtype, mode=mode, batch_size=batch_size, seq_len=seq_len,
        gradient_checkpointing=gradient_checkpointing, optimizer=optimizer, gpus=gpus, zero_stage=zero,
        lora_rank=lora_rank, lora_targets=lora_targets, lora_dropout=lora_dropout, virtual_tokens=virtual_tokens,
        tokens=tokens, gpu_peak_tflops=gpu_tflops, utilization=utilization, activation_bytes_per_param=activation_bytes,
    )  # fmt: skip
    measured_gb = None
    if measure:
        if model is None:
            raise InvalidValueError("estimate: --measure needs --model NAME, a model to run.")
        spec = workload_for(model, result, virtual_tokens=virtual_tokens)
        measured_gb = measure_peak(spec) / 1e9
    if as_json:
        print_json(result.to_dict() | ({"measured_peak_gb": measured_gb} if measure else {}))
        return
    rows = format_estimate(result)
    if measured_gb is not None:
        ratio = result.process_peak_gb / measured_gb
        what = f"{spec.steps} training steps" if spec.mode != "infer" else f"a generation of {spec.new_tokens} tokens"
        rows.append((f"measured peak ({what})", f"{measured_gb:.2f} GB; estimate / measured = {ratio:.2f}"))
    title = f"estimate: {model or f'{params:g} params'}, {mode}, {dtype}"
    print_pairs(title, rows)
