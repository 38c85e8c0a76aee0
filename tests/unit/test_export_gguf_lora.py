"""A peft LoRA adapter written as a GGUF LoRA adapter: metadata, names, shapes, and the delta llama.cpp adds.

The reference is peft's own merge: base GGUF + alpha / rank * B @ A (as llama.cpp applies the
adapter) must equal the GGUF of the model peft merged, tensor by tensor, q/k included (their B is
permuted like the base's rows where the base's are: llama and mistral, not qwen2/qwen3). Then
llama.cpp itself (when built) applies the adapter on the base GGUF and gives the merged GGUF's logits.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model

from genlab.export.gguf_lora import AdapterExportError, lora_alpha, write_lora_gguf
from genlab.export.gguf_model import write_model_gguf
from genlab.models.adapters import merge_adapter
from genlab.models.load import load_model
from genlab.models.tiny import tiny_tokenizer
from tests.unit.export_support import (
    CASES,
    GGUF_ARCH,
    LORA_ALPHA,
    LORA_RANK,
    TEXT,
    llama_cpp_logits,
    qwen2_tokenizer,
    shared_base_and_lora,
    tiny_causal,
)

LAYERS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gguf-lora")
    built = shared_base_and_lora()
    base = load_model(str(built["base"]))
    merged = merge_adapter(base, built["adapter"])
    return {
        **built,
        "base_gguf": write_model_gguf(base.model, base.tokenizer, root / "base.gguf", quant="f32", name="base"),
        "merged_gguf": write_model_gguf(merged.model, merged.tokenizer, root / "merged.gguf", quant="f32", name="merged"),
        "lora_gguf": write_lora_gguf(built["adapter"], base.model.config, root / "lora.gguf", name="tiny-lora"),
    }


def arrays(path: Path) -> dict[str, np.ndarray]:
    return {t.name: np.asarray(t.data, dtype=np.float32) for t in gguf.GGUFReader(path).tensors}


def test_the_adapter_file_says_what_llama_cpp_reads(files) -> None:
    reader = gguf.GGUFReader(files["lora_gguf"])
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["general.architecture"].contents() == "llama"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == pytest.approx(LORA_ALPHA)
    shapes = {t.name: tuple(int(n) for n in t.shape) for t in reader.tensors}  # ggml order (ne0, ne1)
    # lora_a is (rank, in) and lora_b (out, rank) in numpy order: ne = (in, rank) and (rank, out).
    assert shapes["blk.0.attn_q.weight.lora_a"] == (32, LORA_RANK) and shapes["blk.0.attn_q.weight.lora_b"] == (LORA_RANK, 32)
    assert shapes["blk.1.attn_k.weight.lora_b"] == (LORA_RANK, 16) and shapes["blk.1.ffn_down.weight.lora_a"] == (64, LORA_RANK)
    assert set(shapes) == {f"blk.{b}.{n}.weight.lora_{ab}" for b in range(2) for n in LAYERS for ab in "ab"}


@pytest.fixture(scope="module", params=list(CASES))
def other(request, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """For mistral, qwen2 and qwen3: a tiny base, a peft LoRA on it (saved), and the base, merged and LoRA GGUFs."""
    model_type = request.param
    root = tmp_path_factory.mktemp(f"gguf-lora-{model_type}")
    tokenizer = tiny_tokenizer() if model_type == "mistral" else qwen2_tokenizer()
    base = tiny_causal(model_type, tokenizer, seed=3)
    base_gguf = write_model_gguf(base, tokenizer, root / "base.gguf", quant="f32", name="base")
    torch.manual_seed(1)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    config = LoraConfig(r=LORA_RANK, lora_alpha=LORA_ALPHA, init_lora_weights=False, target_modules=targets)
    peft_model = get_peft_model(tiny_causal(model_type, tokenizer, seed=3), config)  # a second copy: peft adapts in place
    peft_model.save_pretrained(root / "adapter")
    merged = peft_model.merge_and_unload().eval()
    return {
        "model_type": model_type, "tokenizer": tokenizer, "base_gguf": base_gguf, "merged": merged,
        "merged_gguf": write_model_gguf(merged, tokenizer, root / "merged.gguf", quant="f32", name="merged"),
        "lora_gguf": write_lora_gguf(root / "adapter", base.config, root / "lora.gguf", name="lora"),
    }  # fmt: skip


def check_delta(files: dict) -> None:
    """Base + alpha / rank * B @ A is the merged model's weight for every adapted tensor; the rest are equal."""
    base, merged, lora = arrays(files["base_gguf"]), arrays(files["merged_gguf"]), arrays(files["lora_gguf"])
    scale = LORA_ALPHA / LORA_RANK
    adapted = {name.removesuffix(".lora_a") for name in lora if name.endswith(".lora_a")}
    for name in adapted:
        delta = scale * lora[name + ".lora_b"] @ lora[name + ".lora_a"]
        np.testing.assert_allclose(base[name] + delta, merged[name], atol=1e-5, err_msg=name)
        assert np.abs(delta).max() > 1e-3  # the adapter does change this weight
    untouched = set(base) - adapted
    assert untouched and all(np.array_equal(base[n], merged[n]) for n in untouched)


def test_base_plus_the_adapters_delta_is_the_merged_model(files) -> None:
    check_delta(files)


def test_each_architectures_adapter_is_the_merged_models_delta(other) -> None:
    reader = gguf.GGUFReader(other["lora_gguf"])
    assert reader.fields["general.architecture"].contents() == GGUF_ARCH[other["model_type"]]
    assert {t.name for t in reader.tensors} == {f"blk.{b}.{n}.weight.lora_{ab}" for b in range(2) for n in LAYERS for ab in "ab"}
    check_delta(other)  # fails if B of q/k is permuted where the base's rows are not, or the other way round


def test_llama_cpp_applies_each_architectures_adapter_as_the_merged_model(other) -> None:
    ids = other["tokenizer"](TEXT).input_ids
    with_lora = llama_cpp_logits(other["base_gguf"], ids, lora_path=other["lora_gguf"])
    merged = llama_cpp_logits(other["merged_gguf"], ids)
    base = llama_cpp_logits(other["base_gguf"], ids)
    scale = np.abs(merged).max()
    assert np.abs(with_lora - merged).max() < 1e-3 * scale
    assert np.abs(base - merged).max() > 0.1 * scale  # the adapter does move the logits


def test_rslora_alpha_and_refusals() -> None:
    config = {"peft_type": "LORA", "r": 16, "lora_alpha": 8}
    assert lora_alpha(config) == 8
    assert lora_alpha({**config, "use_rslora": True}) == pytest.approx(8 * math.sqrt(16))  # alpha'/r = alpha/sqrt(r)
    with pytest.raises(AdapterExportError, match="DoRA"):
        lora_alpha({**config, "use_dora": True})
    with pytest.raises(AdapterExportError, match="modules_to_save"):
        lora_alpha({**config, "modules_to_save": ["lm_head"]})
    with pytest.raises(AdapterExportError, match="PROMPT_TUNING"):
        lora_alpha({"peft_type": "PROMPT_TUNING"})


def test_an_adapter_on_embeddings_is_refused(files, tmp_path: Path) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    folder = Path(shutil.copytree(files["adapter"], tmp_path / "with-embeddings"))
    weights = load_file(folder / "adapter_model.safetensors")
    weights["base_model.model.model.embed_tokens.lora_A.weight"] = weights[next(iter(weights))].clone()
    save_file(weights, folder / "adapter_model.safetensors")
    config = json.loads((folder / "adapter_config.json").read_text())
    with pytest.raises(AdapterExportError, match="embed_tokens"):
        write_lora_gguf(folder, load_model(str(files["base"])).model.config, tmp_path / "x.gguf", name="x")
    assert config["peft_type"] == "LORA"
