"""`genlab estimate`: memory and compute before choosing a model."""

from __future__ import annotations

from typing import Annotated

import typer

from genlab.cli.output import print_json, print_pairs


def estimate_command(
    params: Annotated[float | None, typer.Option(help="Parameter count, e.g. 1e9 (or use --model).")] = None,
    model: Annotated[str | None, typer.Option(help="A catalog name; gives params and the architecture.")] = None,
    dtype: Annotated[str, typer.Option(help="fp32, fp16, bf16, int8 or int4.")] = "fp32",
    mode: Annotated[str, typer.Option(help="infer, train, lora or qlora.")] = "infer",
    batch_size: Annotated[int, typer.Option(help="Sequences per batch (KV cache).")] = 1,
    seq_len: Annotated[int, typer.Option(help="Tokens per sequence (KV cache).")] = 2048,
    gpus: Annotated[int, typer.Option(help="GPUs to shard over (ZeRO) and to time training on.")] = 1,
    zero: Annotated[int, typer.Option(help="ZeRO stage 0-3 (0: plain data parallel).")] = 0,
    lora_rank: Annotated[int, typer.Option(help="LoRA rank r.")] = 8,
    lora_targets: Annotated[str, typer.Option(help="attention (q, v) or all-linear.")] = "attention",
    tokens: Annotated[float | None, typer.Option(help="Training tokens (default: Chinchilla, 20 per parameter).")] = None,
    gpu_tflops: Annotated[float, typer.Option(help="Peak TFLOP/s of one GPU (A100 bf16: 312).")] = 312,
    utilization: Annotated[float, typer.Option(help="Fraction of peak reached (0-1].")] = 0.4,
    activation_bytes: Annotated[float, typer.Option(help="Activation + temporary bytes per parameter in training.")] = 8,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Estimate memory (inference, full training, LoRA/QLoRA, ZeRO) and training compute."""
    from genlab.models.estimate import estimate_for

    result = estimate_for(
        params=params,
        model=model,
        dtype=dtype,
        mode=mode,
        batch_size=batch_size,
        seq_len=seq_len,
        gpus=gpus,
        zero_stage=zero,
        lora_rank=lora_rank,
        lora_targets=lora_targets,
        tokens=tokens,
        gpu_peak_tflops=gpu_tflops,
        utilization=utilization,
        activation_bytes_per_param=activation_bytes,
    )
    if as_json:
        print_json(result.to_dict())
        return
    from genlab.models.estimate import format_estimate

    title = f"estimate: {model or f'{params:g} params'}, {mode}, {dtype}"
    print_pairs(title, format_estimate(result))
