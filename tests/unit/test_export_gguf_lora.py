"""A peft LoRA adapter written as a GGUF LoRA adapter: metadata, names, shapes, and the delta llama.cpp adds.

The reference is peft's own merge: base GGUF + alpha / rank * B @ A (as llama.cpp applies the
adapter) must equal the GGUF of the model peft merged, tensor by tensor, q/k included (their B is
permuted like the base's rows).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import gguf
import numpy as np
import pytest

from genlab.export.gguf_lora import AdapterExportError, lora_alpha, write_lora_gguf
from genlab.export.gguf_model import write_model_gguf
from genlab.models.adapters import merge_adapter
from genlab.models.load import load_model
from tests.unit.export_support import LORA_ALPHA, LORA_RANK, shared_base_and_lora


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
    layers = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
    assert set(shapes) == {f"blk.{b}.{n}.weight.lora_{ab}" for b in range(2) for n in layers for ab in "ab"}


def test_base_plus_the_adapters_delta_is_the_merged_model(files) -> None:
    base, merged, lora = arrays(files["base_gguf"]), arrays(files["merged_gguf"]), arrays(files["lora_gguf"])
    scale = LORA_ALPHA / LORA_RANK
    adapted = {name.removesuffix(".lora_a") for name in lora if name.endswith(".lora_a")}
    for name in adapted:
        delta = scale * lora[name + ".lora_b"] @ lora[name + ".lora_a"]
        np.testing.assert_allclose(base[name] + delta, merged[name], atol=1e-5, err_msg=name)
        assert np.abs(delta).max() > 1e-3  # the adapter does change this weight
    untouched = set(base) - adapted
    assert untouched and all(np.array_equal(base[n], merged[n]) for n in untouched)


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
