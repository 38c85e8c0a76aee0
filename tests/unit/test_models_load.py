"""Loading generators from folders, GGUF files, hub ids and names — and the errors users meet."""

import time
from pathlib import Path

import pytest
import torch

from genlab.errors import HubUnavailableError, ModelLoadError, ModelNotFoundError
from genlab.models.load import load_model, resolve_model_source
from genlab.models.tiny import save_tiny_model, tiny_model


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_tiny_model_round_trips_through_a_folder(tmp_path: Path, kind: str) -> None:
    folder = save_tiny_model(tmp_path / kind, kind=kind, seed=3)
    loaded = load_model(str(folder))
    reference = tiny_model(kind, seed=3)
    assert loaded.source.kind == "folder"
    assert loaded.is_encoder_decoder == (kind == "seq2seq")
    for (name, saved), (_, fresh) in zip(
        loaded.model.state_dict().items(), reference.model.state_dict().items(), strict=True
    ):
        assert torch.equal(saved, fresh), name
    inputs = loaded.tokenizer("#Person1#: Hello there.", return_tensors="pt")
    out = loaded.model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert out.shape[-1] > (0 if kind == "seq2seq" else inputs["input_ids"].shape[-1])


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    a, b, c = (tiny_model("causal", seed=s).model for s in (0, 0, 1))
    wa, wb, wc = (m.model.embed_tokens.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_unknown_name_suggests_closest_catalog_names() -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_model_source("smollm2-135m-instruc")
    message = str(caught.value)
    assert "smollm2-135m-instruct" in message and "did you mean" in message
    assert "\n" not in message


def test_missing_folder_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no such model folder or file"):
        load_model(str(tmp_path / "nowhere"))


def test_folder_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="has no config.json"):
        load_model(str(tmp_path))


def test_folder_with_damaged_weights_is_a_load_error(tmp_path: Path) -> None:
    folder = save_tiny_model(tmp_path / "m")
    (folder / "model.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(ModelLoadError, match="could not load the model"):
        load_model(str(folder))


def test_encoder_only_model_is_not_a_generator(tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="not a text generator"):
        load_model(str(tmp_path))


def test_file_without_gguf_magic_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"PK\x03\x04 this is a zip, not a gguf")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        load_model(str(bad))


def test_truncated_gguf_is_a_load_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 20)
    with pytest.raises(ModelLoadError, match="could not load the GGUF file"):
        load_model(str(bad))


def test_hub_id_with_offline_flag_fails_at_once() -> None:
    start = time.monotonic()
    with pytest.raises(HubUnavailableError, match="HF_HUB_OFFLINE is set"):
        load_model("someone/some-model-not-cached")
    assert time.monotonic() - start < 5


def test_unreachable_hub_fails_within_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    start = time.monotonic()
    with pytest.raises(HubUnavailableError, match="not reachable"):
        load_model("someone/some-model-not-cached")
    assert time.monotonic() - start < 10


def test_catalog_name_resolves_to_its_hub_id() -> None:
    source = resolve_model_source("flan-t5-base")
    assert source.kind == "hub" and source.location == "google/flan-t5-base"


def test_pack_name_resolves_to_pack() -> None:
    assert resolve_model_source("smollm2-135m-instruct").kind == "pack"


def test_embedder_pack_is_not_a_generator() -> None:
    with pytest.raises(ModelLoadError, match="embedder pack, not a text generator"):
        load_model("all-minilm-l6-v2")


def test_bad_dtype_names_the_allowed_values(tmp_path: Path) -> None:
    from genlab.errors import InvalidValueError

    folder = save_tiny_model(tmp_path / "m")
    with pytest.raises(InvalidValueError, match="fp32, fp16, bf16"):
        load_model(str(folder), dtype="fp7")
