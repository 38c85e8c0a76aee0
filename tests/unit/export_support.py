"""Shared by the export tests: a tiny llama base saved as a folder, and a LoRA adapter trained on it (peft);
tiny models of the other architectures written as GGUF (mistral, qwen2, qwen3) with a tokenizer of Qwen2's
layout; llama.cpp's logits for a GGUF."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import Qwen2Converter

from genlab.data.builtin import builtin_dialogues
from genlab.export.quantize import llama_cpp_available
from genlab.models.adapters import base_fingerprint, save_adapter
from genlab.models.load import load_model
from genlab.models.tiny import CHATML_TEMPLATE, SPECIAL_TOKENS, save_tiny_model
from tests.conftest import IN_CI

LORA_RANK, LORA_ALPHA = 4, 8


def build_base_and_lora(root: Path, **lora_options) -> dict[str, Path]:
    """A tiny base folder and a LoRA adapter on q/k/v/o and the MLP (random, non-zero B: it changes outputs)."""
    from peft import LoraConfig, get_peft_model

    base = save_tiny_model(root / "base", seed=3)
    loaded = load_model(str(base))
    fingerprint = base_fingerprint(loaded)
    torch.manual_seed(1)
    config = LoraConfig(
        r=LORA_RANK, lora_alpha=LORA_ALPHA, init_lora_weights=False,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], **lora_options,
    )  # fmt: skip
    peft_model = get_peft_model(loaded.model, config)
    adapter = save_adapter(peft_model, root / "tiny-lora", base=loaded, method="lora", run_id=None, fingerprint=fingerprint)
    return {"base": base, "adapter": adapter}



@functools.cache
def shared_base_and_lora() -> dict[str, Path]:
    """One tiny base and LoRA per test process (in a temporary folder), for the export tests that only read them."""
    return build_base_and_lora(Path(tempfile.mkdtemp(prefix="genlab-export-tiny-")))


TEXT = "#Person1#: Hi, how much is 12 apples?\n#Person2#: 3 dollars, it's cheap!"
# model_type -> what its tiny config adds to the shared shape (and why)
CASES: dict[str, dict[str, Any]] = {
    "mistral": {"tie_word_embeddings": False},  # an output.weight of its own
    "qwen2": {"tie_word_embeddings": True},  # as Qwen2-0.5B; q/k/v biases
    "qwen3": {"tie_word_embeddings": False, "head_dim": 128},  # Qwen3's head_dim, not hidden / heads = 8
}
GGUF_ARCH = {"mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}


def qwen2_tokenizer() -> Any:
    """A byte-level BPE trained as tiny_tokenizer is, behind transformers' own Qwen2 layout (NFC, Qwen2's regex, ByteLevel).

    Trained with that split, it learns merges GPT-2's split never makes (``#Person``, ``?\\n``), so
    a tokenizer named wrongly in the GGUF would tokenise differently in llama.cpp.
    """
    layout = Qwen2Converter(SimpleNamespace(add_prefix_space=False, encoder={}, bpe_ranks={})).converted(vocab={"a": 0}, merges=[])
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.normalizer, bpe.pre_tokenizer, bpe.decoder = layout.normalizer, layout.pre_tokenizer, decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator([row["dialogue"] + "\n" + row["summary"] for row in builtin_dialogues()], trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token="<pad>", bos_token="<|im_start|>", eos_token="<|im_end|>", unk_token="<unk>"
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def tiny_causal(model_type: str, tokenizer: Any, seed: int = 0) -> Any:
    """A 2-layer ``model_type`` model of tiny_model's shape, every weight moved off its init and attention sharpened.

    Biases start at 0 and norms at 1, where a misplaced or missing one would not show; q/k scaled by 10
    peak the attention, so a wrong q/k row order changes the logits by far more than rounding does.
    """
    config = AutoConfig.for_model(
        model_type, vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **CASES[model_type],
    )  # fmt: skip
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        for name, weight in model.named_parameters():
            weight.add_(0.1 * torch.randn_like(weight))
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                weight.mul_(10)
    return model


def llama_cpp_logits(path: Path, ids: list[int], *, lora_path: Path | None = None) -> np.ndarray:
    """llama.cpp's logits (tokens, vocab) for ``ids`` read from the GGUF at ``path`` (f32 KV cache: no f16 rounding)."""
    if not llama_cpp_available() and not IN_CI:
        pytest.skip("llama-cpp-python is not installed: `make setup-llamacpp` builds it")
    import llama_cpp  # in CI, missing is a failure

    llm = llama_cpp.Llama(
        model_path=str(path), lora_path=None if lora_path is None else str(lora_path), n_ctx=128, n_threads=1,
        logits_all=True, verbose=False, type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32,
    )  # fmt: skip
    try:
        assert llm.tokenize(TEXT.encode(), add_bos=False, special=True) == ids  # vocabulary, merges and pre-tokenizer
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)])
    finally:
        llm.close()
