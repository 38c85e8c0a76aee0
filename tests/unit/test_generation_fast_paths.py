"""The engine's two decoding speed-ups: a cache that appends in place, and Linear layers on reordered weights.

Neither may change an answer: the growing cache must hold exactly what transformers' DynamicLayer
holds through every append, row drop, column trim and merge; packed Linear layers must give the same
greedy tokens as torch's own, fall back wherever autograd or another dtype is involved, and put every
layer back on exit.
"""

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from genlab.generation import GenerationEngine, GenerationSettings
from genlab.generation import packed_linear
from genlab.generation.batch_state import BatchState, supports_merging
from genlab.generation.cache_argument import cache_of
from genlab.generation.growing_cache import MIN_SPARE_COLUMNS, GrowingLayer, make_growing
from genlab.generation.packed_linear import packable_layers, packed_linears
from genlab.models.tiny import tiny_model

from tests.unit.test_generation import PROMPTS, sharpen_attention

# --- the growing cache -------------------------------------------------------------------------


def states(batch: int, columns: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, 2, columns, 4, generator=generator),
        torch.randn(batch, 2, columns, 4, generator=generator),
    )


def test_growing_layer_holds_what_dynamic_layer_holds_and_appends_in_place() -> None:
    plain, growing = DynamicLayer(), GrowingLayer()
    buffers = set()
    for step in range(3 * MIN_SPARE_COLUMNS):
        keys, values = states(3, 10 if step == 0 else 1, seed=step)  # a prompt, then one token a step
        expected = plain.update(keys, values)
        got = growing.update(keys, values)
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
        buffers.add(growing.keys.data_ptr())
    assert growing.get_seq_length() == plain.get_seq_length() == 10 + 3 * MIN_SPARE_COLUMNS - 1
    # 201 columns in all, grown by at least half each time: a handful of buffers, not one per step.
    assert len(buffers) <= 4
    assert growing.spare_columns >= 0


def test_growing_layer_adopts_states_replaced_from_outside() -> None:
    """Dropping rows, trimming left columns and merging (batch_state) replace keys; the next append sees it."""
    plain, growing = DynamicLayer(), GrowingLayer()
    for layer in (plain, growing):
        layer.update(*states(4, 12, seed=1))
        layer.update(*states(4, 1, seed=2))
        layer.batch_select_indices(torch.tensor([0, 2, 3]))
        layer.keys, layer.values = layer.keys[..., 3:, :], layer.values[..., 3:, :]
        layer.update(*states(3, 1, seed=3))
        layer.keys = torch.cat([layer.keys, torch.zeros(1, 2, layer.keys.shape[-2], 4)])
        layer.values = torch.cat([layer.values, torch.ones(1, 2, layer.values.shape[-2], 4)])
        layer.update(*states(4, 1, seed=4))
    assert torch.equal(growing.keys, plain.keys) and torch.equal(growing.values, plain.values)
    assert growing.keys.shape == (4, 2, 12 + 1 - 3 + 1 + 1, 4)


def test_make_growing_swaps_full_attention_layers_and_the_batch_still_merges() -> None:
    loaded = tiny_model("causal", seed=3)
    ids = loaded.tokenizer(PROMPTS[:2], return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = loaded.model(**ids, use_cache=True)
    cache = make_growing(cache_of(out))
    assert all(type(layer) is GrowingLayer for layer in cache.layers)
    state = BatchState(cache, ids["attention_mask"], ids["attention_mask"].sum(-1, keepdim=True) - 1)
    assert supports_merging(cache)
    state.merge(BatchState(make_growing(cache_of(out)), ids["attention_mask"], state.positions))
    assert state.size == 4 and cache.layers[0].keys.shape[0] == 4


# --- Linear layers on reordered weights --------------------------------------------------------


@pytest.fixture
def pack_everything(monkeypatch):
    """Tiny models' layers are all below the size packing applies to: lower the bar to none."""
    if not packed_linear.packing_available():
        pytest.fail("this torch has no oneDNN: the packed path cannot be tested here")
    monkeypatch.setattr(packed_linear, "MIN_WEIGHT_ELEMENTS", 0)


@pytest.fixture(scope="module")
def causal():
    return sharpen_attention(tiny_model("causal", seed=7))


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_packed_engine_gives_the_same_greedy_tokens_at_every_batch_size(kind, pack_everything) -> None:
    loaded = sharpen_attention(tiny_model(kind, seed=7))
    settings = GenerationSettings(max_new_tokens=12)
    reference = GenerationEngine(loaded, batch_size=1, packed_weights=False).generate(PROMPTS, settings)
    for batch_size in (1, 3):
        packed = GenerationEngine(loaded, batch_size=batch_size).generate(PROMPTS, settings)
        assert [c.choices[0].token_ids for c in packed] == [c.choices[0].token_ids for c in reference]
    assert all(c.choices[0].token_ids for c in reference)


def test_packed_layers_are_in_use_while_decoding_and_put_back_after(causal, pack_everything) -> None:
    engine = GenerationEngine(causal, batch_size=2)
    layers = packable_layers(causal.model)
    assert layers, "the tiny model has Linear layers to pack"
    seen_packed = []
    for _ in engine.stream(PROMPTS[1], GenerationSettings(max_new_tokens=4)):
        seen_packed.append(all("forward" in layer.__dict__ for layer in layers))
    assert seen_packed and all(seen_packed)
    assert not any("forward" in layer.__dict__ for layer in layers)


def test_packed_logits_match_torch_linear_and_holds_nest(causal, pack_everything) -> None:
    ids = causal.tokenizer(PROMPTS, return_tensors="pt", padding=True)
    layers = packable_layers(causal.model)
    with torch.inference_mode():
        expected = causal.model(**ids).logits
        with packed_linears(causal.model) as outer:
            with packed_linears(causal.model) as inner:
                assert inner == outer == len(layers) == len(_linears(causal))
            assert all("forward" in layer.__dict__ for layer in layers)  # the inner exit kept them
            got = causal.model(**ids).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert not any("forward" in layer.__dict__ for layer in _linears(causal))


def test_training_inside_a_hold_uses_autograd_and_torch_linear(causal, pack_everything) -> None:
    ids = causal.tokenizer(PROMPTS[:2], return_tensors="pt", padding=True)

    def gradients():
        causal.model.zero_grad()
        causal.model(**ids, labels=ids["input_ids"]).loss.backward()
        return [p.grad.clone() for p in causal.model.parameters() if p.grad is not None]

    expected = gradients()
    with packed_linears(causal.model) as count:
        assert count > 0
        got = gradients()
    causal.model.zero_grad()
    assert len(got) == len(expected) and all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


def test_switched_off_or_short_of_memory_nothing_is_packed(causal, pack_everything, monkeypatch) -> None:
    monkeypatch.setenv(packed_linear.ENV_SWITCH, "0")
    with packed_linears(causal.model) as count:
        assert count == 0
    monkeypatch.delenv(packed_linear.ENV_SWITCH)
    with packed_linears(causal.model, enabled=False) as count:
        assert count == 0

    import psutil

    class Scarce:
        available = 1024

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Scarce())
    with packed_linears(causal.model) as count:
        assert count == 0
    assert not any("forward" in layer.__dict__ for layer in _linears(causal))


def _linears(loaded) -> list[torch.nn.Module]:
    return [m for m in loaded.model.modules() if type(m) is torch.nn.Linear]


def test_a_failure_while_packing_leaves_no_layer_packed(causal, pack_everything, monkeypatch) -> None:
    reorder = torch.ops.mkldnn._reorder_linear_weight
    calls = []

    def failing_reorder(weight, batch_size):
        calls.append(1)
        if len(calls) == 3:
            raise MemoryError("no room for the third layer")
        return reorder(weight, batch_size)

    monkeypatch.setattr(torch.ops.mkldnn, "_reorder_linear_weight", failing_reorder)
    with pytest.raises(MemoryError), packed_linears(causal.model):
        pass
    assert len(calls) == 3
    assert not any("forward" in layer.__dict__ for layer in _linears(causal))
    monkeypatch.setattr(torch.ops.mkldnn, "_reorder_linear_weight", reorder)
    with packed_linears(causal.model) as count:  # and the next hold packs afresh
        assert count == len(_linears(causal))
