"""Fine-tuning data on tiny random models: prompts as evaluation builds them, masks, mixtures, packing."""

import copy
import math
from typing import Any

import pytest
import torch

from genlab.data.example import Example
from genlab.errors import InvalidValueError
from genlab.generation.engine import GenerationEngine
from genlab.models.tiny import tiny_model, tiny_tokenizer
from genlab.prompting.icl import build_prompt
from genlab.prompting.templates import get_template
from genlab.tuning.data import FeatureSet, build_instruction_features, mix_tasks, pack_texts, training_collator

ROWS = [
    Example("r0", "#Person1#: My parcel arrived damaged.\n#Person2#: I will send a new one.", "A parcel is replaced."),
    Example("r1", "#Person1#: Table for two at eight?\n#Person2#: Of course.", "Person1 books a table."),
    Example("r2", "#Person1#: I forgot my password.\n#Person2#: Use the reset link.", "Person2 helps reset it."),
]
LONG = Example("long", "#Person1#: " + "I would like to talk about the weather today. " * 12, "They talk.")


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def causal(tokenizer: Any) -> Any:
    return tiny_model("causal", tokenizer=tokenizer)


@pytest.fixture(scope="module")
def seq2seq(tokenizer: Any) -> Any:
    return tiny_model("seq2seq", tokenizer=tokenizer)


@pytest.fixture(scope="module")
def bos_causal(tokenizer: Any) -> Any:
    """A causal model whose tokenizer puts bos before plain text (as Llama's does) but not before a
    chat-formatted prompt, which holds its own special tokens."""
    from tokenizers import processors

    with_bos = copy.deepcopy(tokenizer)
    with_bos.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<|im_start|> $A", special_tokens=[("<|im_start|>", with_bos.bos_token_id)]
    )
    return tiny_model("causal", tokenizer=with_bos)


def ids_of(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def eval_prompt_ids(loaded: Any, row: Example, template: str, chat: bool) -> tuple[list[int], Any]:
    """The ids evaluation feeds the engine for a zero-shot prompt (as genlab.evaluation.run does)."""
    built = build_prompt(
        get_template(template), row, None, 0, tokenizer=loaded.tokenizer, context_window=loaded.context_window,
        max_new_tokens=64, chat=chat, is_encoder_decoder=loaded.is_encoder_decoder,
    )  # fmt: skip
    engine = GenerationEngine(loaded)
    return engine._encode_prompt(built.text, chat=False, preformatted=built.chat), built


# --- causal instruction rows ----------------------------------------------------------------------


@pytest.mark.parametrize("model", ["causal", "bos_causal"])
@pytest.mark.parametrize("template", ["summarize", "qa"])
@pytest.mark.parametrize("chat", [True, False])
def test_prompt_ids_are_what_evaluation_feeds_the_engine(
    request: pytest.FixtureRequest, model: str, chat: bool, template: str
) -> None:
    loaded = request.getfixturevalue(model)
    features = build_instruction_features(ROWS, loaded, template=template, chat=chat)
    for row, feature, prompt_length in zip(ROWS, features.features, features.prompt_lengths, strict=True):
        expected, built = eval_prompt_ids(loaded, row, template, chat)
        assert built.chat is chat  # the tiny tokenizer has a chat template: chat=True must use it
        if model == "bos_causal":  # bos before plain text only, so the two kinds of prompt differ
            added = [] if chat else [loaded.tokenizer.bos_token_id]
            assert expected == added + ids_of(loaded.tokenizer, built.text)
        assert feature["input_ids"][:prompt_length] == expected
        assert prompt_length == len(expected)


def test_labels_are_masked_on_the_prompt_and_equal_target_and_end_token_after(causal: Any, tokenizer: Any) -> None:
    features = build_instruction_features(ROWS, causal, chat=True)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert features.ids == ["r0", "r1", "r2"] and len(features) == 3 and features.dropped == []
    for row, feature, prompt_length in zip(ROWS, features.features, features.prompt_lengths, strict=True):
        answer = ids_of(tokenizer, row.target) + [im_end]  # ChatML: the reply right after "assistant\n"
        assert feature["labels"][:prompt_length] == [-100] * prompt_length
        assert feature["labels"][prompt_length:] == answer == feature["input_ids"][prompt_length:]
        assert feature["attention_mask"] == [1] * len(feature["input_ids"])
        assert tokenizer.decode(feature["input_ids"]).endswith("<|im_start|>assistant\n" + row.target + "<|im_end|>")
    assert features.target_tokens == sum(len(ids_of(tokenizer, row.target)) + 1 for row in ROWS)
    assert features.prompt_tokens == sum(features.prompt_lengths) > features.target_tokens


def test_completion_only_false_puts_loss_on_every_token(causal: Any) -> None:
    everything = build_instruction_features(ROWS, causal, completion_only=False)
    masked = build_instruction_features(ROWS, causal, completion_only=True)
    for full, partial in zip(everything.features, masked.features, strict=True):
        assert full["labels"] == full["input_ids"] == partial["input_ids"]
        assert -100 not in full["labels"] and -100 in partial["labels"]


def test_plain_prompt_ending_in_a_visible_character_gets_a_space_before_the_target(causal: Any, tokenizer: Any) -> None:
    row = ROWS[0]
    after_colon = build_instruction_features([row], causal, template="qa", chat=False)  # "...\nAnswer:"
    after_newline = build_instruction_features([row], causal, template="summarize", chat=False)  # "...?\n"
    for features, lead in ((after_colon, " "), (after_newline, "")):
        feature, prompt_length = features.features[0], features.prompt_lengths[0]
        target_ids = feature["input_ids"][prompt_length:-1]
        assert tokenizer.decode(target_ids) == lead + row.target
        assert feature["input_ids"][-1] == tokenizer.eos_token_id  # a plain prompt ends on eos


def test_chat_end_token_is_the_templates_end_of_turn_when_the_engine_stops_on_it(tokenizer: Any) -> None:
    # eos is <unk> here, so the chat end token (<|im_end|>, from the template) and eos differ.
    other = copy.deepcopy(tokenizer)
    other.eos_token = "<unk>"
    loaded = tiny_model("causal", tokenizer=other)
    im_end, unk = other.convert_tokens_to_ids("<|im_end|>"), other.convert_tokens_to_ids("<unk>")
    loaded.model.generation_config.eos_token_id = [im_end, unk]  # as an instruct model's config lists both
    assert build_instruction_features(ROWS[:1], loaded, chat=True).features[0]["labels"][-1] == im_end
    assert build_instruction_features(ROWS[:1], loaded, chat=False).features[0]["labels"][-1] == unk
    loaded.model.generation_config.eos_token_id = unk  # the engine would not stop on <|im_end|>: use eos
    assert build_instruction_features(ROWS[:1], loaded, chat=True).features[0]["labels"][-1] == unk


def test_rows_longer_than_max_length_are_dropped_not_truncated(causal: Any) -> None:
    every = build_instruction_features([*ROWS, LONG], causal, max_length=512)
    lengths = dict(zip(every.ids, (len(f["input_ids"]) for f in every.features), strict=True))
    max_length = max(lengths[row.id] for row in ROWS)
    assert lengths["long"] > max_length  # the setting below keeps ROWS and cuts LONG
    kept = build_instruction_features([ROWS[0], LONG, *ROWS[1:]], causal, max_length=max_length)
    assert kept.ids == ["r0", "r1", "r2"] and kept.dropped == ["long"]
    assert [len(f["input_ids"]) for f in kept.features] == [lengths[row.id] for row in ROWS]


def test_all_rows_too_long_names_the_longest_and_max_length(causal: Any) -> None:
    longest = len(build_instruction_features([LONG], causal).features[0]["input_ids"])
    with pytest.raises(InvalidValueError, match=rf"max_length=10 tokens \(the longest has {longest}\)"):
        build_instruction_features([ROWS[0], LONG], causal, max_length=10)


def test_a_row_without_a_target_is_named(causal: Any) -> None:
    with pytest.raises(InvalidValueError, match="row 'no-target' has no target"):
        build_instruction_features([ROWS[0], Example("no-target", "Hello")], causal)
    assert len(build_instruction_features([], causal)) == 0  # no rows is not an error (an empty split)


def test_max_length_beyond_the_context_window_is_refused(causal: Any) -> None:
    with pytest.raises(InvalidValueError, match=f"max_length={causal.context_window + 1}"):
        build_instruction_features(ROWS, causal, max_length=causal.context_window + 1)


# --- encoder-decoder rows -------------------------------------------------------------------------


def test_seq2seq_reads_the_rendered_template_and_learns_the_target_with_eos(seq2seq: Any, tokenizer: Any) -> None:
    features = build_instruction_features(ROWS, seq2seq, template="summarize", chat=True)
    template = get_template("summarize")
    for row, feature in zip(ROWS, features.features, strict=True):
        rendered = template.render(input=row.input, examples=[])  # no chat for an encoder-decoder
        assert feature["input_ids"] == list(tokenizer(rendered)["input_ids"])
        assert feature["attention_mask"] == [1] * len(feature["input_ids"])
        assert feature["labels"] == ids_of(tokenizer, row.target) + [tokenizer.eos_token_id]
    assert features.prompt_tokens == sum(len(f["input_ids"]) for f in features.features)
    # max_length bounds the encoder input only: a long target does not drop its row.
    short_prompt = Example("long-target", "Hi.", "They greet each other warmly. " * 20)
    prompt_length = len(build_instruction_features([short_prompt], seq2seq).features[0]["input_ids"])
    kept = build_instruction_features([short_prompt, LONG], seq2seq, max_length=prompt_length)
    assert kept.ids == ["long-target"] and kept.dropped == ["long"]


def test_seq2seq_labels_keep_the_tokenizers_own_eos_without_doubling_it(tokenizer: Any) -> None:
    from tokenizers import processors

    t5_like = copy.deepcopy(tokenizer)  # appends eos to every encoding, as T5's tokenizer does
    eos = t5_like.eos_token_id
    t5_like.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="$A <|im_end|>", special_tokens=[("<|im_end|>", eos)]
    )
    loaded = tiny_model("seq2seq", tokenizer=t5_like)
    feature = build_instruction_features(ROWS[:1], loaded).features[0]
    assert feature["labels"] == ids_of(t5_like, ROWS[0].target) + [eos]
    assert feature["input_ids"][-1] == eos and feature["input_ids"].count(eos) == 1


# --- mixtures -------------------------------------------------------------------------------------


def task(name: str, size: int) -> FeatureSet:
    features = FeatureSet(dropped=[f"{name}-dropped"])
    for index in range(size):
        ids = [index, index + 1]
        features.append(f"{name}:{index}", {"input_ids": ids, "attention_mask": [1, 1], "labels": ids}, 1, 1 + index)
    return features


def test_mixture_follows_the_weights_exactly() -> None:
    mixed = mix_tasks([(task("a", 100), 0.7), (task("b", 100), 0.3)], seed=0, total=100)
    from_a = [row_id for row_id in mixed.ids if row_id.startswith("a:")]
    assert len(mixed) == 100 and len(from_a) == 70
    assert len(set(mixed.ids)) == 100  # without replacement while a task has rows left
    assert mixed.dropped == ["a-dropped", "b-dropped"]
    # Largest remainder: 10 rows at 1:1:1 are 3.33 each, the first task by order gets the spare row.
    thirds = mix_tasks([(task("a", 9), 1), (task("b", 9), 1), (task("c", 9), 1)], seed=0, total=10)
    assert [sum(i.startswith(p) for i in thirds.ids) for p in "abc"] == [4, 3, 3]


def test_mixture_defaults_to_all_rows_and_repeats_only_beyond_a_task() -> None:
    a, b = task("a", 10), task("b", 30)
    mixed = mix_tasks([(a, 1.0), (b, 1.0)], seed=3)  # total 40, 20 each: a has only 10
    from_a = [row_id for row_id in mixed.ids if row_id.startswith("a:")]
    assert len(mixed) == 40 and len(from_a) == 20
    assert set(from_a) == set(a.ids)  # every row of a once, the other 10 drawn again
    from_b = [row_id for row_id in mixed.ids if row_id.startswith("b:")]
    assert len(set(from_b)) == 20  # b has rows left: no repeats
    expected_targets = sum(1 + int(row_id.split(":")[1]) for row_id in mixed.ids)
    assert mixed.target_tokens == expected_targets and mixed.prompt_tokens == 40


def test_mixture_is_deterministic_for_a_seed_and_shuffled() -> None:
    parts = [(task("a", 50), 0.5), (task("b", 50), 0.5)]
    first, again, other = mix_tasks(parts, seed=1), mix_tasks(parts, seed=1), mix_tasks(parts, seed=2)
    assert first.ids == again.ids and first.features == again.features
    assert first.ids != other.ids
    assert first.ids[:50] != parts[0][0].ids  # interleaved, not task after task


@pytest.mark.parametrize("weight", [0, -0.5, math.nan, math.inf, "1", True])
def test_mixture_refuses_a_bad_weight(weight: Any) -> None:
    with pytest.raises(InvalidValueError, match="for task 2 is not allowed: mixture weights must be numbers"):
        mix_tasks([(task("a", 5), 1.0), (task("b", 5), weight)])


def test_mixture_refuses_no_tasks_an_empty_task_and_a_bad_total() -> None:
    with pytest.raises(InvalidValueError, match="at least one task"):
        mix_tasks([])
    with pytest.raises(InvalidValueError, match="task 2 of the mixture has no rows"):
        mix_tasks([(task("a", 5), 1.0), (FeatureSet(), 1.0)])
    with pytest.raises(InvalidValueError, match="total=0"):
        mix_tasks([(task("a", 5), 1.0)], total=0)


# --- packing --------------------------------------------------------------------------------------


def test_packing_cuts_eos_joined_documents_into_full_blocks(tokenizer: Any) -> None:
    texts = [row.input for row in ROWS] + ["", LONG.input]
    eos = tokenizer.eos_token_id
    stream = [token for text in texts if text for token in [*ids_of(tokenizer, text), eos]]
    packed = pack_texts(texts, tokenizer, block_size=16)
    assert len(packed) == len(stream) // 16 and len(stream) % 16 != 0  # the partial block is dropped
    assert [token for f in packed.features for token in f["input_ids"]] == stream[: 16 * len(packed)]
    for feature in packed.features:
        assert len(feature["input_ids"]) == 16 and feature["labels"] == feature["input_ids"]
        assert feature["attention_mask"] == [1] * 16
    assert packed.ids[:2] == ["block:0", "block:1"] and packed.target_tokens == 16 * len(packed)


def test_packing_too_little_text_says_how_much_there_is(tokenizer: Any) -> None:
    tokens = len(ids_of(tokenizer, "Hello there.")) + 1  # and its eos
    with pytest.raises(InvalidValueError, match=f"hold {tokens} tokens, fewer than one block of block_size=64"):
        pack_texts(["Hello there."], tokenizer, block_size=64)
    with pytest.raises(InvalidValueError, match="block_size=0"):
        pack_texts(["Hello there."], tokenizer, block_size=0)


# --- batches --------------------------------------------------------------------------------------


def test_collator_pads_right_with_pad_id_zero_mask_and_ignored_labels(causal: Any, tokenizer: Any) -> None:
    features = build_instruction_features(ROWS, causal)
    lengths = [len(f["input_ids"]) for f in features.features]
    batch = training_collator(tokenizer)(features.features)
    width = max(lengths)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (3, width)
    for row, (feature, length) in enumerate(zip(features.features, lengths, strict=True)):
        assert batch["input_ids"][row, :length].tolist() == feature["input_ids"]
        assert batch["labels"][row, :length].tolist() == feature["labels"]
        assert batch["input_ids"][row, length:].tolist() == [tokenizer.pad_token_id] * (width - length)
        assert batch["attention_mask"][row].tolist() == [1] * length + [0] * (width - length)
        assert batch["labels"][row, length:].tolist() == [-100] * (width - length)
    assert min(lengths) < width  # some row was padded


def test_collator_pads_with_eos_without_a_pad_token_and_leaves_the_tokenizer_alone(tokenizer: Any) -> None:
    no_pad = copy.deepcopy(tokenizer)
    no_pad.pad_token = None
    no_pad.padding_side = "left"  # as some chat models ship it for generation
    short = {"input_ids": [5, 6], "attention_mask": [1, 1], "labels": [-100, 6]}
    long = {"input_ids": [5, 6, 7, 8], "attention_mask": [1] * 4, "labels": [-100, 6, 7, 8]}
    batch = training_collator(no_pad, is_encoder_decoder=False)([short, long])
    assert batch["input_ids"][0].tolist() == [5, 6, no_pad.eos_token_id, no_pad.eos_token_id]
    assert batch["labels"][0].tolist() == [-100, 6, -100, -100]
    assert no_pad.pad_token is None and no_pad.padding_side == "left"


def test_collated_batches_train_both_model_kinds(causal: Any, seq2seq: Any) -> None:
    for loaded in (causal, seq2seq):
        features = build_instruction_features(ROWS, loaded)
        if loaded.is_encoder_decoder:  # labels are not as long as the inputs: padded on their own
            assert any(len(f["labels"]) != len(f["input_ids"]) for f in features.features)
        batch = training_collator(loaded.tokenizer, is_encoder_decoder=loaded.is_encoder_decoder)(features.features)
        with torch.no_grad():
            loss = loaded.model(**batch).loss
        assert torch.isfinite(loss) and loss.item() > 0
