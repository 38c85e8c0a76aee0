"""Run a workload (:mod:`genlab.peak_memory.workload`) in a fresh process and read its peak resident memory.

A fresh process, so the peak is the work's own (loading, then training or generating) plus the
interpreter and libraries it imports, and not the high-water mark of whatever the caller held.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from genlab.errors import GenlabError, InvalidValueError
from genlab.models.estimate import Estimate
from genlab.peak_memory.workload import WorkloadSpec

MEASURABLE_MODES = {"train": "train", "lora": "lora", "prompt-tuning": "prompt-tuning", "infer": "infer"}


def workload_for(model: str, est: Estimate, *, virtual_tokens: int = 20, new_tokens: int = 32) -> WorkloadSpec:
    """The workload that does what ``est`` estimated: its mode, batch, length, LoRA and checkpointing settings."""
    if est.mode not in MEASURABLE_MODES:
        raise InvalidValueError(f"--measure runs {', '.join(MEASURABLE_MODES)} on CPU; mode {est.mode!r} is not one.")
    if est.dtype != "fp32":
        raise InvalidValueError(f"--measure runs in fp32 on CPU; dtype {est.dtype!r} is not measured here.")
    if est.mode == "infer" and est.seq_len <= new_tokens:
        raise InvalidValueError(f"--measure serving needs --seq-len above the {new_tokens} new tokens it generates.")
    return WorkloadSpec(
        model=model, mode=MEASURABLE_MODES[est.mode], batch_size=est.batch_size, seq_len=est.seq_len,
        gradient_checkpointing=est.gradient_checkpointing, lora_rank=est.lora_rank,
        lora_targets=est.lora_targets, virtual_tokens=virtual_tokens, new_tokens=new_tokens,
    )  # fmt: skip


def measure_peak(spec: WorkloadSpec, *, timeout: float = 3600.0) -> float:
    """Peak resident memory in bytes of a fresh process that ran ``spec``."""
    command = [sys.executable, "-m", "genlab.peak_memory.workload", spec.model_dump_json()]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise GenlabError(f"measuring {spec.mode} on {spec.model} took longer than {timeout:.0f} s.") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"peak_rss_bytes"')]
    if done.returncode != 0 or not lines:
        detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise GenlabError(f"measuring {spec.mode} on {spec.model} failed: {detail}")
    return float(json.loads(lines[-1])["peak_rss_bytes"])
