"""The shape-based estimate against what really happens: autograd's saved tensors, and a real process's peak.

References: ``torch.autograd.graph.saved_tensors_hooks`` sees every tensor a forward pass keeps for
backward (the count the formulas claim), and a fresh process that trains three steps or generates
(:mod:`genlab.peak_memory`) gives the peak resident memory the estimate must land near (±25%).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PromptTuningConfig, TaskType, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from genlab.models.estimate import EstimateRequest, estimate
from genlab.models.estimate_activations import saved_floats_per_token_layer
from genlab.models.shape import shape_from_config
from genlab.models.tiny import save_tiny_model
from genlab.peak_memory.measure import measure_peak, workload_for

TOKENS = 64


def llama(layers: int) -> LlamaForCausalLM:
    config = LlamaConfig(
        num_hidden_layers=layers, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=160, vocab_size=100, tie_word_embeddings=True,
    )  # fmt: skip
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


def saved_bytes(layers: int, mode: str) -> int:
    """Bytes of the non-weight tensors one training forward pass keeps for backward (distinct storages)."""
    model = llama(layers)
    if mode == "lora":
        lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.05, target_modules="all-linear", task_type=TaskType.CAUSAL_LM)
        model = get_peft_model(model, lora)
    elif mode == "prompt-tuning":
        model = get_peft_model(model, PromptTuningConfig(num_virtual_tokens=8, task_type=TaskType.CAUSAL_LM))
    model.train()
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            kept[storage.data_ptr()] = max(kept.get(storage.data_ptr(), 0), storage.nbytes())
        return tensor

    ids = torch.randint(0, 100, (1, TOKENS))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids)
    return sum(kept.values())


@pytest.mark.parametrize("mode", ["train", "lora", "prompt-tuning"])
def test_saved_floats_per_layer_match_autograd(mode: str) -> None:
    # Two layers against four: the difference is two layers' saved tensors, whatever sits outside them.
    tokens = TOKENS + (8 if mode == "prompt-tuning" else 0)
    measured = (saved_bytes(4, mode) - saved_bytes(2, mode)) / 2 / tokens / 4
    shape = shape_from_config(llama(1).config)
    counted = saved_floats_per_token_layer(shape, mode, lora_rank=4, lora_targets="all-linear")
    # The count leaves out per-token scalars (RMSNorm's rsqrt, the attention's log-sum-exp per head): < 2%.
    assert counted == pytest.approx(measured, rel=0.02)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.mark.parametrize(
    "settings",
    [
        {"mode": "lora", "batch_size": 4, "seq_len": 128, "lora_rank": 8, "lora_targets": "all-linear"},
        {"mode": "infer", "batch_size": 8, "seq_len": 96},
    ],
    ids=["lora-training", "serving"],
)
def test_estimate_within_25_percent_of_the_measured_peak(tiny_folder: Path, settings: dict) -> None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_folder)
    params = LlamaForCausalLM(config).num_parameters()
    est = estimate(EstimateRequest(params=params, shape=shape_from_config(config), **settings))
    assert est.activation_rule == "shape"
    measured = measure_peak(workload_for(str(tiny_folder), est, new_tokens=16)) / 1e9
    assert 0.75 <= est.process_peak_gb / measured <= 1.25, (est.process_peak_gb, measured)
