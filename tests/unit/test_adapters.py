"""Adapters on tiny random models: peft's format, base fingerprints, merging, swapping, soft prompts.

The adapters are built directly with peft (LoRA with ``init_lora_weights=False``, so B is not zero
and the adapter changes the logits) and saved with :func:`save_adapter`, as the trainer does. The
reference for every merged model is plain peft loading the same folder onto the same base.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from genlab.errors import GenlabError, ModelNotFoundError
from genlab.lineage import LineageStore
from genlab.models.adapters import (
    AdapterMismatchError,
    base_fingerprint,
    list_adapters,
    load_adapters,
    merge_adapter,
    merge_and_save,
    read_adapter_info,
    resolve_adapter,
    save_adapter,
    weights_hash,
)
from genlab.models.load import LoadedModel, load_model
from genlab.models.merge import merge_adapter_into_model
from genlab.models.tiny import tiny_model, tiny_tokenizer
from tests.unit.export_support import shared_base_and_lora

TEXT = "#Person1#: Where is my parcel? #Person2#: It left the depot today."


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> dict[str, Path]:
    """Base model folders: two causal models with different weights and one seq2seq model."""
    folders = {}
    for key, kind, seed in (("causal", "causal", 0), ("other", "causal", 1), ("seq2seq", "seq2seq", 0)):
        folder = tmp_path_factory.mktemp(f"base-{key}")
        loaded = tiny_model(kind, seed=seed, tokenizer=tokenizer)  # type: ignore[arg-type]
        loaded.model.save_pretrained(folder)
        loaded.tokenizer.save_pretrained(folder)
        folders[key] = folder
    return folders


def make_lora(base: Path, folder: Path, *, seed: int, targets: tuple[str, ...] = ("q_proj", "v_proj")) -> Path:
    from peft import LoraConfig, get_peft_model

    loaded = load_model(str(base))
    fingerprint = base_fingerprint(loaded)  # before get_peft_model wraps loaded.model in place
    torch.manual_seed(seed)  # init_lora_weights=False: A and B both random, so the delta BA is not zero
    peft_model = get_peft_model(loaded.model, LoraConfig(r=4, target_modules=list(targets), init_lora_weights=False))
    return save_adapter(peft_model, folder, base=loaded, method="lora", run_id=None, fingerprint=fingerprint)


def make_prompt_tuning(base: Path, folder: Path, *, task_type: str = "CAUSAL_LM") -> tuple[Path, torch.Tensor]:
    from peft import PromptTuningConfig, get_peft_model

    loaded = load_model(str(base))
    fingerprint = base_fingerprint(loaded)
    torch.manual_seed(0)
    peft_model = get_peft_model(loaded.model, PromptTuningConfig(task_type=task_type, num_virtual_tokens=4))
    saved = peft_model.get_prompt_embedding_to_save("default").detach().clone()
    save_adapter(peft_model, folder, base=loaded, method="prompt_tuning", run_id=None, fingerprint=fingerprint)
    return folder, saved


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory, folders: dict[str, Path]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {
        "a": make_lora(folders["causal"], root / "a", seed=10),
        "b": make_lora(folders["causal"], root / "b", seed=11),
        "prompt": make_prompt_tuning(folders["causal"], root / "prompt")[0],
    }


def logits(model: Any, tokenizer: Any, text: str = TEXT) -> torch.Tensor:
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        if getattr(model.config, "is_encoder_decoder", False):
            return model(input_ids=ids, decoder_input_ids=ids[:, :5]).logits
        return model(input_ids=ids).logits


def plain_peft(base: Path, adapter: Path, *, seq2seq: bool = False) -> Any:
    """The reference: the adapter folder loaded by peft alone onto a fresh copy of the base."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    auto = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    return PeftModel.from_pretrained(auto.from_pretrained(base), adapter).eval()


def test_adapter_folder_is_plain_peft_and_merging_gives_peft_logits(folders, adapters, tokenizer) -> None:
    folder = adapters["a"]
    assert {"adapter_config.json", "adapter_model.safetensors", "genlab_adapter.json", "tokenizer.json"} <= {
        p.name for p in folder.iterdir()
    }
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(folders["causal"].resolve())  # plain peft finds the base

    merged = merge_adapter(load_model(str(folders["causal"])), folder)
    expected = logits(plain_peft(folders["causal"], folder), tokenizer)
    torch.testing.assert_close(logits(merged.model, tokenizer), expected, atol=1e-5, rtol=1e-5)
    base = logits(load_model(str(folders["causal"])).model, tokenizer)
    assert (expected - base).abs().max() > 1e-2  # the adapter changes the model, so agreeing means something


def test_merge_adapter_leaves_the_callers_model_unchanged(folders, adapters) -> None:
    base = load_model(str(folders["causal"]))
    before = {name: tensor.clone() for name, tensor in base.model.state_dict().items()}

    merged = merge_adapter(base, adapters["a"])

    after = base.model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged.model.state_dict()[q], before[q])  # the delta went into the copy
    assert merged.name.endswith("+a")
    # The merged weights are not the files the base came from, so they do not pass for the base.
    assert base_fingerprint(merged) != base_fingerprint(base)


def test_adapter_on_another_base_is_refused_naming_both(folders, adapters) -> None:
    other = load_model(str(folders["other"]))  # same architecture, other weights: peft alone would accept it

    with pytest.raises(AdapterMismatchError) as caught:
        merge_adapter(other, adapters["a"])
    message = str(caught.value)
    assert str(folders["causal"].resolve()) in message and str(folders["other"]) in message
    assert len(message.splitlines()) == 1
    with pytest.raises(AdapterMismatchError):
        load_adapters(other, {"a": adapters["a"]})


def test_fingerprints_identify_the_weights_and_ignore_adapter_tensors(folders, tokenizer) -> None:
    from peft import LoraConfig, PromptTuningConfig, get_peft_model

    first, second = load_model(str(folders["causal"])), load_model(str(folders["causal"]))
    assert base_fingerprint(first) == base_fingerprint(second)
    assert base_fingerprint(first).startswith("sha256:")
    assert base_fingerprint(first) != base_fingerprint(load_model(str(folders["other"])))

    in_memory = tiny_model("causal", seed=0, tokenizer=tokenizer)
    assert base_fingerprint(in_memory) == base_fingerprint(tiny_model("causal", seed=0, tokenizer=tokenizer))
    assert base_fingerprint(in_memory).startswith("weights-sha256:")
    plain = weights_hash(in_memory.model)
    lora = get_peft_model(in_memory.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    assert weights_hash(lora) == plain
    prompt = get_peft_model(tiny_model("causal", seed=0, tokenizer=tokenizer).model, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    assert weights_hash(prompt) == plain
    with torch.no_grad():  # one base weight changed: another base
        lora.get_base_model().model.layers[1].mlp.up_proj.weight[0, 0] += 1.0
    assert weights_hash(lora) != plain


def test_adapter_trained_in_memory_fits_the_same_weights_loaded_from_a_folder(folders, tokenizer, tmp_path) -> None:
    from peft import LoraConfig, get_peft_model

    in_memory = tiny_model("causal", seed=0, tokenizer=tokenizer)  # the weights saved in folders["causal"]
    fingerprint = base_fingerprint(in_memory)
    peft_model = get_peft_model(in_memory.model, LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False))
    save_adapter(peft_model, tmp_path / "mem", base=in_memory, method="lora", run_id="r1", fingerprint=fingerprint)

    assert read_adapter_info(tmp_path / "mem").base_fingerprint == fingerprint
    merge_adapter(load_model(str(folders["causal"])), tmp_path / "mem")  # same weights: accepted
    with pytest.raises(AdapterMismatchError):
        merge_adapter(load_model(str(folders["other"])), tmp_path / "mem")


def test_adapter_set_swaps_adapters_on_one_base(folders, adapters, tokenizer) -> None:
    from genlab.generation import GenerationEngine, GenerationSettings

    base_logits = logits(load_model(str(folders["causal"])).model, tokenizer)
    merged_a = merge_adapter(load_model(str(folders["causal"])), adapters["a"])
    merged_b = merge_adapter(load_model(str(folders["causal"])), adapters["b"])
    adapter_set = load_adapters(
        load_model(str(folders["causal"])), {"a": adapters["a"], "b": adapters["b"], "prompt": adapters["prompt"]}
    )
    assert adapter_set.names == ["a", "b", "prompt"] and adapter_set.active is None

    with_a = logits(adapter_set.use("a").model, tokenizer)
    assert adapter_set.active == "a"
    with_b = logits(adapter_set.use("b").model, tokenizer)
    torch.testing.assert_close(with_a, logits(merged_a.model, tokenizer), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(with_b, logits(merged_b.model, tokenizer), atol=1e-5, rtol=1e-5)
    assert (with_a - with_b).abs().max() > 1e-2
    assert torch.equal(logits(adapter_set.use(None).model, tokenizer), base_logits)  # every adapter layer off
    assert torch.equal(logits(adapter_set.use("a").model, tokenizer), with_a)  # and back
    prompted = adapter_set.use("prompt")  # a soft prompt: the LoRA layers are off, the engine reads the vectors
    assert prompted.soft_prompt is not None and torch.equal(logits(prompted.model, tokenizer), base_logits)

    settings = GenerationSettings(max_new_tokens=6)
    from_set = GenerationEngine(adapter_set.use("b")).generate([TEXT], settings)[0]
    from_merged = GenerationEngine(merged_b).generate([TEXT], settings)[0]
    assert from_set.choices[0].token_ids == from_merged.choices[0].token_ids
    with pytest.raises(ModelNotFoundError, match="'c'.*a, b, prompt"):
        adapter_set.use("c")


def test_prompt_tuning_adapter_becomes_a_soft_prompt_and_cannot_be_merged(folders, tmp_path) -> None:
    folder, saved = make_prompt_tuning(folders["causal"], tmp_path / "prompt")
    base = load_model(str(folders["causal"]))

    with_prompt = merge_adapter(base, folder)
    assert tuple(with_prompt.soft_prompt.shape) == (4, base.model.config.hidden_size)
    assert torch.equal(with_prompt.soft_prompt, saved)
    assert read_adapter_info(folder).peft_type == "PROMPT_TUNING"
    with pytest.raises(GenlabError, match="soft prompt"):
        merge_and_save(base, folder, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_soft_prompt_on_an_encoder_decoder_model_is_refused(folders, tmp_path) -> None:
    # The engine reads soft prompts only on decoder-only models: silently ignoring it would score the base.
    folder, _ = make_prompt_tuning(folders["seq2seq"], tmp_path / "prompt", task_type="SEQ_2_SEQ_LM")
    with pytest.raises(GenlabError, match="decoder-only"):
        merge_adapter(load_model(str(folders["seq2seq"])), folder)


def test_merge_and_save_writes_a_loadable_model_and_refuses_an_existing_folder(folders, adapters, tokenizer, tmp_path) -> None:
    base = load_model(str(folders["causal"]))
    output = merge_and_save(base, adapters["a"], tmp_path / "merged")

    reloaded = load_model(str(output))
    expected = logits(merge_adapter(load_model(str(folders["causal"])), adapters["a"]).model, tokenizer)
    torch.testing.assert_close(logits(reloaded.model, tokenizer), expected, atol=1e-6, rtol=1e-6)
    record = json.loads((output / "genlab_model.json").read_text())
    assert record["adapter"] == str(adapters["a"].resolve())
    assert record["base_fingerprint"] == base_fingerprint(base)
    written = (output / "model.safetensors").read_bytes()
    with pytest.raises(GenlabError, match="exists already"):
        merge_and_save(base, adapters["b"], output)
    assert (output / "model.safetensors").read_bytes() == written


def test_adapters_are_found_by_name_under_genlab_home(adapters, genlab_home: Path) -> None:
    assert list_adapters() == []
    shutil.copytree(adapters["a"], genlab_home / "adapters" / "summarizer")
    shutil.copytree(adapters["prompt"], genlab_home / "adapters" / "persona")

    assert resolve_adapter("summarizer") == (genlab_home / "adapters" / "summarizer").resolve()
    info = read_adapter_info("summarizer")
    assert (info.name, info.peft_type, info.method) == ("summarizer", "LORA", "lora")
    assert [(i.name, i.peft_type) for i in list_adapters()] == [("persona", "PROMPT_TUNING"), ("summarizer", "LORA")]
    with pytest.raises(ModelNotFoundError, match="'summariser'.*persona, summarizer"):
        resolve_adapter("summariser")


def test_adapter_made_elsewhere_has_no_fingerprint_and_still_merges(folders, tokenizer, tmp_path) -> None:
    from peft import LoraConfig, get_peft_model

    loaded = load_model(str(folders["causal"]))
    torch.manual_seed(5)
    get_peft_model(loaded.model, LoraConfig(r=4, target_modules=["v_proj"], init_lora_weights=False)).save_pretrained(
        tmp_path / "elsewhere"
    )
    info = read_adapter_info(tmp_path / "elsewhere")
    assert info.base_fingerprint is None and info.method == ""

    merged = merge_adapter(load_model(str(folders["causal"])), tmp_path / "elsewhere")
    expected = logits(plain_peft(folders["causal"], tmp_path / "elsewhere"), tokenizer)
    torch.testing.assert_close(logits(merged.model, tokenizer), expected, atol=1e-5, rtol=1e-5)


def test_seq2seq_lora_adapter_round_trips(folders, tokenizer, tmp_path) -> None:
    folder = make_lora(folders["seq2seq"], tmp_path / "t5-lora", seed=3, targets=("q", "v"))

    merged: LoadedModel = merge_adapter(load_model(str(folders["seq2seq"])), folder)
    expected = logits(plain_peft(folders["seq2seq"], folder, seq2seq=True), tokenizer)
    torch.testing.assert_close(logits(merged.model, tokenizer), expected, atol=1e-5, rtol=1e-5)
    base = logits(load_model(str(folders["seq2seq"])).model, tokenizer)
    assert (expected - base).abs().max() > 1e-2


def test_a_merge_records_into_the_store_it_is_given(tmp_path: Path) -> None:
    tiny = shared_base_and_lora()
    with LineageStore(tmp_path / "given.sqlite") as given:
        result = merge_adapter_into_model(tiny["adapter"], tmp_path / "merged", model=str(tiny["base"]), store=given)
        assert given.get_run(result.run_id).kind == "merge"
    with LineageStore() as default:
        assert default.list_runs(limit=10) == []
