"""Adapters genlab saves open in plain peft, offline: ``AutoPeftModelForCausalLM.from_pretrained(folder)``.

The reference for every logit is genlab's own loading of the same base and adapter (``merge_adapter``
and the serving ``AdapterSet``); HF_HUB_OFFLINE=1 is set for every test (tests/conftest.py), so peft
finding its base cannot mean a download. Bases are tiny random models saved to a folder, loaded as a
pack, a folder or a hub model would be (the ``ModelSource`` is what decides where peft is pointed);
the real default pack is checked once, marked ``integration``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import AutoPeftModelForCausalLM, LoraConfig, get_peft_model

from genlab.models.adapters import base_fingerprint, load_adapters, merge_adapter, read_adapter_info, save_adapter
from genlab.models.load import LoadedModel, ModelSource, load_model
from genlab.models.tiny import tiny_model

TEXT = "#Person1#: Where is my parcel? #Person2#: It left the depot today."


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-base")
    loaded = tiny_model("causal", seed=3)
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    return folder


def save_lora(base: LoadedModel, folder: Path, *, seed: int = 5) -> Path:
    """A LoRA adapter on ``base`` with B not zero (so it changes the logits), saved as the trainer saves."""
    fingerprint = base_fingerprint(base)  # before get_peft_model wraps base.model in place
    torch.manual_seed(seed)
    peft_model = get_peft_model(base.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False))
    return save_adapter(peft_model, folder, base=base, method="lora", run_id="run-1", fingerprint=fingerprint)


def as_pack(folder: Path, name: str = "tiny-pack") -> LoadedModel:
    """The tiny base as genlab holds a pack: the pack's name, its weights read from a folder of the model store."""
    return replace(load_model(str(folder)), name=name, source=ModelSource("pack", name))


def logits(model: Any, tokenizer: Any) -> torch.Tensor:
    ids = tokenizer(TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_pack_adapter_opens_in_plain_peft_offline_with_genlabs_logits(base_folder, tmp_path) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    adapter = save_lora(as_pack(base_folder), tmp_path / "summarizer")
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(base_folder.resolve())  # the pack's folder, not its name
    record = json.loads((adapter / "genlab_adapter.json").read_text())
    assert record["base_model"] == "tiny-pack" and record["base_source"] == "pack"  # genlab still loads it by name
    assert record["base_path"] == str(base_folder.resolve()) and record["base_hub_id"] is None

    plain = AutoPeftModelForCausalLM.from_pretrained(str(adapter)).eval()
    tokenizer = load_model(str(base_folder)).tokenizer
    merged = logits(merge_adapter(as_pack(base_folder), adapter).model, tokenizer)
    torch.testing.assert_close(logits(plain, tokenizer), merged, atol=1e-5, rtol=1e-5)
    served = load_adapters(as_pack(base_folder), {"summarizer": adapter}).use("summarizer").model
    torch.testing.assert_close(logits(served, tokenizer), merged, atol=1e-5, rtol=1e-5)
    base = logits(load_model(str(base_folder)).model, tokenizer)
    assert (merged - base).abs().max() > 1e-2  # the adapter changes the model, so agreeing means something


def test_hub_base_is_named_by_its_hub_id(base_folder, tmp_path) -> None:
    hub = replace(load_model(str(base_folder)), name="tiny-card", source=ModelSource("hub", "someone/tiny-model"))
    adapter = save_lora(hub, tmp_path / "a")
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == "someone/tiny-model"
    record = json.loads((adapter / "genlab_adapter.json").read_text())
    assert record["base_model"] == "someone/tiny-model" and record["base_hub_id"] == "someone/tiny-model"
    assert record["base_source"] == "hub" and record["base_path"] == str(base_folder.resolve())
    assert read_adapter_info(adapter).base_model == "someone/tiny-model"


def test_adapters_saved_with_a_pack_name_still_load_in_genlab(base_folder, tmp_path) -> None:
    """Before: ``base_model_name_or_path`` was the pack's name, and genlab_adapter.json had four fields."""
    new = save_lora(as_pack(base_folder), tmp_path / "new")
    old = tmp_path / "old"
    shutil.copytree(new, old)
    config = json.loads((old / "adapter_config.json").read_text())
    (old / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "tiny-pack"}))
    record = json.loads((new / "genlab_adapter.json").read_text())
    old_record = {key: record[key] for key in ("base_model", "base_fingerprint", "method", "run_id")}
    (old / "genlab_adapter.json").write_text(json.dumps(old_record))

    info = read_adapter_info(old)
    assert info.base_model == "tiny-pack" and info.base_fingerprint == record["base_fingerprint"]
    tokenizer = load_model(str(base_folder)).tokenizer
    expected = logits(merge_adapter(as_pack(base_folder), new).model, tokenizer)
    torch.testing.assert_close(logits(merge_adapter(as_pack(base_folder), old).model, tokenizer), expected)
    served = load_adapters(as_pack(base_folder), {"old": old}).use("old").model
    torch.testing.assert_close(logits(served, tokenizer), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.integration
def test_adapter_on_the_default_pack_opens_in_plain_peft_offline(tmp_path) -> None:
    pack = load_model("smollm2-135m-instruct")
    adapter = save_lora(pack, tmp_path / "smol-lora")
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert Path(config["base_model_name_or_path"]).is_dir()  # the pack's folder in the model store
    assert json.loads((adapter / "genlab_adapter.json").read_text())["base_model"] == "smollm2-135m-instruct"
    plain = AutoPeftModelForCausalLM.from_pretrained(str(adapter)).eval()
    merged = merge_adapter(load_model("smollm2-135m-instruct"), adapter)
    torch.testing.assert_close(logits(plain, merged.tokenizer), logits(merged.model, merged.tokenizer), atol=1e-4, rtol=1e-4)
