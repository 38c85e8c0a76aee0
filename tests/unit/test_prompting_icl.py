"""In-context learning: example selection, the token budget, and chat formatting."""

import copy
from typing import Any

import numpy as np
import pytest

from genlab.data.example import Example
from genlab.errors import GenlabError, InvalidValueError, PromptTooLongError
from genlab.models.tiny import tiny_tokenizer
from genlab.prompting import (
    ExampleSelector,
    as_user_prompt,
    build_prompt,
    format_chat,
    get_template,
    has_chat_template,
    trim_history,
)

POOL = [Example(f"p{i}", f"#Person1#: Question number {i}?\n#Person2#: Answer {i}.", f"Summary {i}.") for i in range(8)]
QUERY = Example("q", "#Person1#: My order never arrived.\n#Person2#: I will send a new one today.")


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def plain_tokenizer() -> Any:
    tokenizer = copy.deepcopy(tiny_tokenizer())
    tokenizer.chat_template = None
    return tokenizer


def n_tokens(tokenizer: Any, text: str, *, special: bool = True) -> int:
    return len(tokenizer(text, add_special_tokens=special)["input_ids"])


# --- selection ----------------------------------------------------------------------------------


def test_first_takes_the_pool_order_and_never_the_query_itself() -> None:
    selector = ExampleSelector(POOL, "first")
    assert selector.select(QUERY, 3) == POOL[:3]
    assert selector.select(POOL[0], 2) == POOL[1:3]  # same id
    same_text = Example("elsewhere", POOL[1].input)
    assert selector.select(same_text, 2) == [POOL[0], POOL[2]]  # same input text, other id
    assert selector.select(QUERY, 100) == POOL  # never more than available
    assert selector.select(QUERY, 0) == []
    with pytest.raises(InvalidValueError, match="k=-1"):
        selector.select(QUERY, -1)


def test_random_is_reproducible_per_query_and_changes_with_the_seed() -> None:
    other = Example("q2", "#Person1#: Where is the station?")
    a, b = ExampleSelector(POOL, "random", seed=7), ExampleSelector(POOL, "random", seed=7)
    first_a = a.select(QUERY, 3)
    b.select(other, 3)  # another query asked first does not change this query's draw
    assert b.select(QUERY, 3) == first_a
    assert len(first_a) == 3 and len({e.id for e in first_a}) == 3
    draws = {tuple(e.id for e in ExampleSelector(POOL, "random", seed=s).select(QUERY, 3)) for s in range(5)}
    assert len(draws) > 1
    for query in POOL:
        assert query not in ExampleSelector(POOL, "random", seed=1).select(query, 7)
    # The seed is mixed with the query id, so different queries get different draws.
    per_query = {tuple(e.id for e in a.select(Example(f"new{i}", f"text {i}"), 3)) for i in range(5)}
    assert len(per_query) > 1


class FakeEmbedder:
    """Fixed 2-d vectors by text, counting calls (normalised, as asked)."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors
        self.calls: list[list[str]] = []

    def encode(self, texts: list[str], normalize_embeddings: bool = False) -> np.ndarray:
        assert normalize_embeddings
        self.calls.append(list(texts))
        out = np.array([self.vectors[t] for t in texts], dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_similar_orders_by_cosine_and_embeds_the_pool_once() -> None:
    pool = [Example("x", "east", "E"), Example("y", "north", "N"), Example("z", "north-east", "NE")]
    embedder = FakeEmbedder({"east": [1, 0], "north": [0, 1], "north-east": [1, 1], "mostly north": [1, 3]})
    selector = ExampleSelector(pool, "similar", embedder=embedder)
    # cos to (1,3)/sqrt(10): north 0.949 > north-east 0.894 > east 0.316
    assert [e.id for e in selector.select(Example("q", "mostly north"), 3)] == ["y", "z", "x"]
    assert [e.id for e in selector.select(Example("q", "mostly north"), 1)] == ["y"]
    assert [e.id for e in selector.select(pool[1], 3)] == ["z", "x"]  # not itself
    assert embedder.calls[0] == ["east", "north", "north-east"]
    assert all(len(call) == 1 for call in embedder.calls[1:])  # the pool was embedded once


def test_similar_with_the_default_embedder_picks_the_obvious_neighbour() -> None:
    pool = [
        Example("refund", "I would like my money back for the blender I returned last week.", "Asks for a refund."),
        Example("parcel", "My parcel arrived crushed and the vase inside was smashed.", "Reports a damaged parcel."),
        Example("weather", "It will be sunny tomorrow with a light breeze in the afternoon.", "Weather forecast."),
    ]
    selector = ExampleSelector(pool, "similar")  # loads the real default embedder
    query = Example("q", "The delivery box was broken and the lamp in the package is cracked.")
    assert [e.id for e in selector.select(query, 1)] == ["parcel"]
    assert selector.select(query, 3)[-1].id == "weather"


def test_bad_selection_and_unsolved_pool_examples_are_refused() -> None:
    with pytest.raises(InvalidValueError, match="selection='nearest'.*first, random, similar"):
        ExampleSelector(POOL, "nearest")  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="'u' in the pool has no target"):
        ExampleSelector([*POOL, Example("u", "no summary")], "first")


# --- the token budget ---------------------------------------------------------------------------


def _sizes(tokenizer: Any, shots: int) -> list[int]:
    """Token counts of the summarize prompt for QUERY with 0..shots of the first pool examples."""
    template = get_template("summarize")
    return [n_tokens(tokenizer, template.render(input=QUERY.input, examples=POOL[:k])) for k in range(shots + 1)]


def test_all_shots_fit_in_a_large_window(tokenizer: Any) -> None:
    built = build_prompt(
        get_template("summarize"), QUERY, ExampleSelector(POOL, "first"), 3,
        tokenizer=tokenizer, context_window=10_000, max_new_tokens=50,
    )
    assert built.examples == POOL[:3] and built.dropped_examples == 0
    assert built.text == get_template("summarize").render(input=QUERY.input, examples=POOL[:3])
    assert built.prompt_tokens == n_tokens(tokenizer, built.text) == _sizes(tokenizer, 3)[3]


def test_budget_drops_examples_from_the_end_and_the_exact_fit_passes(tokenizer: Any) -> None:
    sizes = _sizes(tokenizer, 3)
    assert sizes == sorted(sizes) and len(set(sizes)) == 4
    kwargs = {"tokenizer": tokenizer, "max_new_tokens": 40}
    template, selector = get_template("summarize"), ExampleSelector(POOL, "first")
    exact = build_prompt(template, QUERY, selector, 3, context_window=sizes[1] + 40, **kwargs)
    assert exact.examples == POOL[:1] and exact.dropped_examples == 2
    assert exact.prompt_tokens == sizes[1]
    one_short = build_prompt(template, QUERY, selector, 3, context_window=sizes[1] + 39, **kwargs)
    assert one_short.examples == [] and one_short.dropped_examples == 3 and one_short.prompt_tokens == sizes[0]
    assert QUERY.input in one_short.text  # the input is whole


def test_zero_shot_too_long_raises_with_the_numbers(tokenizer: Any) -> None:
    zero = _sizes(tokenizer, 0)[0]
    window = zero + 40 - 1
    with pytest.raises(PromptTooLongError) as caught:
        build_prompt(
            get_template("summarize"), QUERY, ExampleSelector(POOL, "first"), 2,
            tokenizer=tokenizer, context_window=window, max_new_tokens=40,
        )
    assert str(caught.value) == (
        f"the prompt for example 'q' has {zero} tokens and max_new_tokens is 40: "
        f"{zero} + 40 exceeds the model's context window of {window} tokens."
    )


def test_encoder_decoder_budget_counts_only_the_prompt(tokenizer: Any) -> None:
    zero = _sizes(tokenizer, 0)[0]
    kwargs = {"tokenizer": tokenizer, "max_new_tokens": 200, "is_encoder_decoder": True}
    built = build_prompt(get_template("summarize"), QUERY, None, 0, context_window=zero, **kwargs)
    assert built.prompt_tokens == zero
    with pytest.raises(PromptTooLongError, match=f"has {zero} tokens, more than the encoder's window of {zero - 1}"):
        build_prompt(get_template("summarize"), QUERY, None, 0, context_window=zero - 1, **kwargs)


def test_chat_counts_the_chat_formatted_text(tokenizer: Any, plain_tokenizer: Any) -> None:
    template = get_template("summarize")
    kwargs = {"context_window": 10_000, "max_new_tokens": 10}
    chat = build_prompt(template, QUERY, None, 0, tokenizer=tokenizer, chat=True, **kwargs)
    plain = build_prompt(template, QUERY, None, 0, tokenizer=tokenizer, chat=False, **kwargs)
    wrapped = f"<|im_start|>user\n{plain.text}<|im_end|>\n<|im_start|>assistant\n"
    assert chat.text == wrapped  # zero-shot: the rendered prompt as the one user turn
    assert chat.chat and chat.prompt_tokens == n_tokens(tokenizer, wrapped, special=False) > plain.prompt_tokens
    fallback = build_prompt(template, QUERY, None, 0, tokenizer=plain_tokenizer, chat=True, **kwargs)
    assert not fallback.chat and fallback.prompt_tokens == plain.prompt_tokens


def test_chat_few_shot_puts_each_example_in_its_own_turn(tokenizer: Any) -> None:
    template = get_template("summarize")
    pool = [Example("a", "#Person1#: Hi.", "They greet."), Example("b", "#Person1#: Bye.", "They part.")]
    built = build_prompt(
        template, QUERY, ExampleSelector(pool), 2, tokenizer=tokenizer, context_window=10_000, max_new_tokens=10, chat=True
    )
    zero_shot = [template.render(input=e.input, examples=[]) for e in [*pool, QUERY]]
    expected = (
        f"<|im_start|>user\n{zero_shot[0]}<|im_end|>\n<|im_start|>assistant\nThey greet.<|im_end|>\n"
        f"<|im_start|>user\n{zero_shot[1]}<|im_end|>\n<|im_start|>assistant\nThey part.<|im_end|>\n"
        f"<|im_start|>user\n{zero_shot[2]}<|im_end|>\n<|im_start|>assistant\n"
    )
    assert built.text == expected and [e.id for e in built.examples] == ["a", "b"]


def test_plain_text_counts_the_tokenizers_special_tokens_and_chat_text_does_not() -> None:
    # Like T5, which appends </s> to plain text; a chat template already holds its special tokens.
    from tokenizers import processors

    tokenizer = tiny_tokenizer()
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="$A <|im_end|>", special_tokens=[("<|im_end|>", end)]
    )
    template = get_template("summarize")
    kwargs = {"tokenizer": tokenizer, "context_window": 10_000, "max_new_tokens": 10}
    text = template.render(input=QUERY.input, examples=[])
    plain = build_prompt(template, QUERY, None, 0, **kwargs)
    assert plain.prompt_tokens == n_tokens(tokenizer, text, special=False) + 1
    chat = build_prompt(template, QUERY, None, 0, chat=True, **kwargs)
    assert chat.prompt_tokens == n_tokens(tokenizer, as_user_prompt(tokenizer, text), special=False)


def test_bad_shots_and_variables_are_refused(tokenizer: Any, tmp_path: Any) -> None:
    kwargs = {"tokenizer": tokenizer, "context_window": 1000, "max_new_tokens": 10}
    selector = ExampleSelector(POOL, "first")
    with pytest.raises(InvalidValueError, match="shots=-1"):
        build_prompt(get_template("summarize"), QUERY, selector, -1, **kwargs)
    with pytest.raises(InvalidValueError, match="without an example selector"):
        build_prompt(get_template("summarize"), QUERY, None, 2, **kwargs)
    bare = tmp_path / "bare.jinja"
    bare.write_text("Summarise: {{ input }}\n", encoding="utf-8")
    with pytest.raises(InvalidValueError, match="never shows its examples"):
        build_prompt(get_template(str(bare)), QUERY, selector, 2, **kwargs)
    with pytest.raises(InvalidValueError, match="may not set 'input'"):
        build_prompt(get_template("summarize"), QUERY, selector, 1, variables={"input": "x"}, **kwargs)
    built = build_prompt(
        get_template("translate"), QUERY, selector, 1, variables={"target_language": "Welsh"}, **kwargs
    )
    assert built.text.endswith("Welsh:")


# --- chat ---------------------------------------------------------------------------------------


def test_format_chat_uses_the_tokenizer_template(tokenizer: Any, plain_tokenizer: Any) -> None:
    # Expected strings written from CHATML_TEMPLATE in genlab/models/tiny.py.
    assert has_chat_template(tokenizer) and not has_chat_template(plain_tokenizer)
    assert format_chat(tokenizer, [{"role": "user", "content": "Hi"}]) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert as_user_prompt(tokenizer, "Hi", system="Be brief.") == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert as_user_prompt(plain_tokenizer, "Hi", system="Be brief.") == "Hi"
    with pytest.raises(GenlabError, match="no chat template"):
        format_chat(plain_tokenizer, [{"role": "user", "content": "Hi"}])
    with pytest.raises(InvalidValueError, match=r"messages\[0\]"):
        format_chat(tokenizer, [{"role": "robot", "content": "Hi"}])


CONVERSATION = [
    {"role": "system", "content": "You are a helpful support agent."},
    {"role": "user", "content": "My parcel has not arrived."},
    {"role": "assistant", "content": "I am sorry. Could you give me the tracking number?"},
    {"role": "user", "content": "It is 4411 2093."},
    {"role": "assistant", "content": "Thank you. It is at the depot and will arrive tomorrow."},
    {"role": "user", "content": "Can I pick it up myself?"},
]


def _chat_tokens(tokenizer: Any, messages: list[dict[str, str]]) -> int:
    return n_tokens(tokenizer, format_chat(tokenizer, messages), special=False)


def test_trim_history_drops_oldest_turns_and_keeps_system_and_last(tokenizer: Any) -> None:
    full = _chat_tokens(tokenizer, CONVERSATION)
    assert trim_history(tokenizer, CONVERSATION, full + 20, 20) == CONVERSATION  # exact fit: unchanged
    without_first_turn = [CONVERSATION[0], *CONVERSATION[3:]]
    size = _chat_tokens(tokenizer, without_first_turn)
    trimmed = trim_history(tokenizer, CONVERSATION, full + 19, 20)
    assert trimmed == without_first_turn  # the whole first turn (user and reply) went
    assert trim_history(tokenizer, CONVERSATION, size + 20, 20) == without_first_turn
    kept = [CONVERSATION[0], CONVERSATION[-1]]
    assert trim_history(tokenizer, CONVERSATION, size + 19, 20) == kept
    minimum = _chat_tokens(tokenizer, kept)
    with pytest.raises(PromptTooLongError) as caught:
        trim_history(tokenizer, CONVERSATION, minimum + 19, 20)
    assert f"have {minimum} tokens and 20 are reserved: {minimum} + 20 exceeds" in str(caught.value)
    assert f"context window of {minimum + 19} tokens" in str(caught.value)
