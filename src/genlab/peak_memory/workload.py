"""The work whose peak memory is measured, run in a fresh process: three training steps, or a generation.

``python -m genlab.peak_memory.workload '<WorkloadSpec JSON>'`` loads the model through
:func:`genlab.models.load.load_model`, then either trains it for ``steps`` optimizer steps with
transformers' ``Trainer`` (full, peft LoRA or peft prompt tuning; AdamW, as genlab's fine-tuning
runs) on ``batch_size`` rows of exactly ``seq_len`` random tokens, or generates ``new_tokens`` tokens for
``batch_size`` prompts of ``seq_len - new_tokens`` tokens through genlab's generation engine with its
reordered weights held, as a server holds them. It prints one JSON line with the process's peak
resident memory (``VmHWM``). Nothing here is hand-written training: the libraries do the work.
"""

from __future__ import annotations

import json
import sys
import tempfile
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from genlab.optimize.measure import peak_resident_kb

Workload = Literal["train", "lora", "prompt-tuning", "infer"]


class WorkloadSpec(BaseModel):
    """What the measured process does; validated in the parent before the child starts."""

    model_config = ConfigDict(extra="forbid")

    model: str
    mode: Workload
    batch_size: int = Field(ge=1)
    seq_len: int = Field(ge=2)  # tokens per row in training; prompt + new tokens when serving
    gradient_checkpointing: bool = False
    lora_rank: int = Field(default=8, ge=1)
    lora_targets: Literal["attention", "all-linear"] = "attention"
    virtual_tokens: int = Field(default=20, ge=1)  # prompt tuning
    new_tokens: int = Field(default=32, ge=1)  # serving
    steps: int = Field(default=3, ge=1)


def _peft_model(model: Any, spec: WorkloadSpec) -> Any:
    from peft import LoraConfig, PromptTuningConfig, TaskType, get_peft_model

    if spec.mode == "lora":
        targets = "all-linear" if spec.lora_targets == "all-linear" else ["q_proj", "v_proj"]
        config: Any = LoraConfig(r=spec.lora_rank, lora_alpha=2 * spec.lora_rank, lora_dropout=0.05,
                                 target_modules=targets, task_type=TaskType.CAUSAL_LM)  # fmt: skip
    else:
        config = PromptTuningConfig(num_virtual_tokens=spec.virtual_tokens, task_type=TaskType.CAUSAL_LM)
    return get_peft_model(model, config)


def train_steps(spec: WorkloadSpec) -> None:
    import torch
    from transformers import Trainer, TrainingArguments, default_data_collator

    from genlab.models.load import load_model

    loaded = load_model(spec.model)
    model = loaded.model if spec.mode == "train" else _peft_model(loaded.model, spec)
    model.train()
    vocab = loaded.model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(spec.batch_size * spec.steps):
        ids = torch.randint(0, vocab, (spec.seq_len,), generator=generator)
        rows.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()})
    with tempfile.TemporaryDirectory() as output:
        arguments = TrainingArguments(
            output_dir=output, per_device_train_batch_size=spec.batch_size, max_steps=spec.steps,
            learning_rate=1e-4, activation_checkpointing=spec.gradient_checkpointing, use_cpu=True,
            save_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True,
            dataloader_num_workers=0, remove_unused_columns=False,
        )  # fmt: skip
        Trainer(model=model, args=arguments, train_dataset=rows, data_collator=default_data_collator).train()


def generate(spec: WorkloadSpec) -> None:
    import torch

    from genlab.generation import GenerationEngine, GenerationSettings
    from genlab.models.load import load_model

    loaded = load_model(spec.model)
    prompt_len = spec.seq_len - spec.new_tokens
    generator = torch.Generator().manual_seed(0)
    low = min(1000, loaded.model.config.vocab_size // 2)  # ordinary tokens, not the special ones at the start
    ids = torch.randint(low, loaded.model.config.vocab_size, (spec.batch_size, prompt_len), generator=generator)
    prompts = [loaded.tokenizer.decode(row) for row in ids]
    eos = loaded.tokenizer.eos_token_id
    ban_eos = ((eos, -100.0),) if eos is not None else ()  # every row decodes all its new tokens
    settings = GenerationSettings(max_new_tokens=spec.new_tokens, logit_bias=ban_eos)
    engine = GenerationEngine(loaded, batch_size=spec.batch_size)
    with engine.hold_packed_weights():
        engine.generate(prompts, settings, preformatted=True)


def main(argv: list[str]) -> int:
    spec = WorkloadSpec.model_validate_json(argv[0])
    if spec.mode == "infer":
        generate(spec)
    else:
        train_steps(spec)
    print(json.dumps({"peak_rss_bytes": peak_resident_kb() * 1024}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
