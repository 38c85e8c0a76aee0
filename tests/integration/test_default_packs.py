"""The packs that work offline, loaded for real: the default generator, embedder and toxicity scorer."""

import json

import pytest

from genlab.models.catalog import get_card
from genlab.models.packs import PACKS, ensure_converted

pytestmark = pytest.mark.integration

# SmolLM2-135M: 30 layers, hidden 576, 9 heads (3 KV), MLP 1536, vocab 49,152, tied embeddings:
# 49152*576 + 30*(576*576*2 + 576*192*2 + 3*576*1536 + 2*576) + 576 = 134,515,008 (counted by hand
# from the published config; the test checks genlab measures it from the weights, not types it in).
SMOLLM2_PARAMS = 134_515_008


@pytest.fixture(scope="module")
def default_model():
    from genlab.models.load import load_model

    return load_model("smollm2-135m-instruct")


def test_default_pack_is_converted_once_to_safetensors(default_model) -> None:
    pack = PACKS["smollm2-135m-instruct"]
    folder = ensure_converted(pack)
    assert default_model.path == folder
    assert (folder / "model.safetensors").is_file()
    manifest = json.loads((folder / "genlab-pack.json").read_text())
    assert manifest["params"] == SMOLLM2_PARAMS
    assert manifest["source_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config  # saved as a plain fp32 model


def test_default_model_is_measured_not_typed(default_model) -> None:
    assert default_model.num_parameters == SMOLLM2_PARAMS
    card = get_card("smollm2-135m-instruct")
    assert card.params == default_model.num_parameters and card.params_source == "measured"
    assert card.context_window == 8192 and card.offline
    assert card.shape is not None and card.shape.num_kv_heads == 3


def test_default_model_summarises_a_dialogsum_dialogue(default_model, dialogsum_dev) -> None:
    import genlab
    from genlab.demo import SUMMARY_PROMPT

    row = json.loads(dialogsum_dev.read_text().splitlines()[0])
    result = genlab.generate(default_model, SUMMARY_PROMPT.format(dialogue=row["dialogue"]), max_new_tokens=48)
    assert len(result.text.split()) >= 3
    assert result.choices[0].finish_reason in {"stop", "length"}
    assert 0 < result.new_tokens <= 48


def test_embedder_pack_gives_384_dimensional_meaningful_vectors() -> None:
    from genlab.models.companions import load_embedder

    embedder = load_embedder()
    vectors = embedder.encode(
        ["My parcel arrived damaged.", "The package I got was broken.", "The weather is lovely today."],
        normalize_embeddings=True,
    )
    assert vectors.shape == (3, 384)
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > unrelated + 0.2


def test_toxicity_pack_scores_offensive_text_higher() -> None:
    from genlab.models.companions import load_toxicity_classifier

    scorer = load_toxicity_classifier()
    clean, offensive = scorer.predict_prob(["Thank you for your help today.", "you are a stupid idiot"])
    assert 0.0 <= clean < 0.5 < offensive <= 1.0
