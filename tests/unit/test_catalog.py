"""The catalog's cards are valid, unique, and their numbers agree with their own architecture."""

import pytest

from genlab.models.card import ModelCard
from genlab.models.catalog import closest_names, hub_cards
from genlab.models.hub import looks_like_hub_id
from genlab.models.packs import PACKS


def test_names_are_unique_across_packs_and_hub_cards() -> None:
    names = list(PACKS) + [card.name for card in hub_cards()]
    assert len(names) == len(set(names))


def test_hub_cards_name_real_hub_ids_and_published_counts() -> None:
    for card in hub_cards():
        assert looks_like_hub_id(card.source), card.name
        assert card.params_source == "published" and card.params and card.params > 1_000_000


def test_catalog_covers_the_families_and_objectives_the_course_names() -> None:
    kinds = {(card.family, card.objective) for card in hub_cards()}
    assert {("encoder-only", "MLM"), ("encoder-decoder", "span corruption"), ("decoder-only", "CLM")} <= kinds


def _llama_like_params(card: ModelCard, tied: bool) -> int:
    """Parameters of a Llama-style decoder from its dims (no biases): embeddings, attention, SwiGLU MLP,
    two RMSNorms per layer and a final one, plus an LM head when it is not tied to the embeddings."""
    s = card.shape
    q_width, kv_width = s.num_heads * s.attention_head_dim, s.num_kv_heads * s.attention_head_dim
    attention = s.hidden_size * q_width * 2 + s.hidden_size * kv_width * 2
    mlp = 3 * s.hidden_size * s.intermediate_size
    per_layer = attention + mlp + 2 * s.hidden_size
    embeddings = s.vocab_size * s.hidden_size
    return embeddings + s.num_layers * per_layer + s.hidden_size + (0 if tied else embeddings)


@pytest.mark.parametrize(
    "card", [c for c in hub_cards() if c.family == "decoder-only" and c.shape and c.shape.gated_mlp], ids=lambda c: c.name
)
def test_llama_like_published_counts_agree_with_their_shape(card: ModelCard) -> None:
    # The published count must lie between the tied-embedding count and the untied count plus the
    # small attention biases some families have (Qwen2: q, k, v biases, well under 1%).
    low, high = _llama_like_params(card, tied=True), _llama_like_params(card, tied=False)
    assert low * 0.999 <= card.params <= high * 1.01, (card.name, low, card.params, high)


def test_closest_names_finds_typos_and_substrings() -> None:
    assert closest_names("flan-t5-bsae")[0] == "flan-t5-base"
    assert "smollm2-135m-instruct" in closest_names("smollm2")
    assert closest_names("zzzzzz") == []
