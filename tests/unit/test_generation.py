"""The generation engine on tiny random models: batching must not change answers."""

import pytest
import torch

from genlab.errors import InvalidValueError, PromptTooLongError
from genlab.generation import GenerationEngine, GenerationSettings
from genlab.generation.rows import ListSource
from genlab.models.tiny import tiny_model

PROMPTS = [
    "#Person1#: My parcel arrived damaged.",
    "#Person1#: Hi, I'd like to book a table for two tonight at eight, please.\n#Person2#: Of course.",
    "Hello",
    "#Person1#: Can you help me reset my password? I forgot it again and the link does not work.",
    "#Person2#: Thanks!",
]


def sharpen_attention(loaded):
    """Scale the attention weights of a random tiny model so that what a row attends to decides its
    tokens: at the default init, attention barely moves the residual stream and a padding or masking
    bug would not change a single greedy token."""
    with torch.no_grad():
        for name, weight in loaded.model.named_parameters():
            if name.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight")) or name.endswith(
                (".q.weight", ".k.weight", ".v.weight", ".o.weight")
            ):
                weight.mul_(30)
    return loaded


@pytest.fixture(scope="module", params=["causal", "seq2seq"])
def loaded(request):
    return sharpen_attention(tiny_model(request.param, seed=7))


def test_greedy_is_identical_across_batch_sizes(loaded) -> None:
    settings = GenerationSettings(max_new_tokens=12)
    one = GenerationEngine(loaded, batch_size=1).generate(PROMPTS, settings)
    many = GenerationEngine(loaded, batch_size=4).generate(PROMPTS, settings)
    assert [c.choices[0].token_ids for c in one] == [c.choices[0].token_ids for c in many]
    assert all(len(c.choices[0].token_ids) > 0 for c in one)


def test_greedy_matches_transformers_generate(loaded) -> None:
    engine = GenerationEngine(loaded, batch_size=3)
    settings = GenerationSettings(max_new_tokens=10)
    for prompt, completion in zip(PROMPTS, engine.generate(PROMPTS, settings), strict=True):
        inputs = loaded.tokenizer(prompt, return_tensors="pt")
        with torch.inference_mode():
            output = loaded.model.generate(**inputs, max_new_tokens=10, do_sample=False)
        new = output[0][1:] if loaded.is_encoder_decoder else output[0][inputs["input_ids"].shape[1] :]
        reference = [t for t in new.tolist() if t not in engine.eos_ids and t != engine.pad_id]
        assert list(completion.choices[0].token_ids) == reference


def test_seeded_sampling_does_not_depend_on_batch_company(loaded) -> None:
    settings = GenerationSettings(max_new_tokens=10, temperature=1.5, top_k=50, seed=11)
    alone = GenerationEngine(loaded, batch_size=1).generate(PROMPTS[:1], settings)[0]
    in_a_crowd = GenerationEngine(loaded, batch_size=5).generate(PROMPTS, settings)[0]
    again = GenerationEngine(loaded, batch_size=2).generate(PROMPTS[:3], settings)[0]
    assert alone.choices[0].token_ids == in_a_crowd.choices[0].token_ids == again.choices[0].token_ids
    other_seed = GenerationEngine(loaded).generate(PROMPTS[:1], settings.with_overrides(seed=12))[0]
    assert other_seed.choices[0].token_ids != alone.choices[0].token_ids


def test_num_return_sequences_gives_different_samples(loaded) -> None:
    settings = GenerationSettings(max_new_tokens=8, temperature=2.0, seed=0, num_return_sequences=3)
    (completion,) = GenerationEngine(loaded).generate(PROMPTS[:1], settings)
    assert len(completion.choices) == 3
    assert len({c.token_ids for c in completion.choices}) > 1


def test_max_new_tokens_is_respected_with_length_reason(loaded) -> None:
    # A random tiny model rarely emits end-of-sequence; forbid it to make the check certain.
    engine = GenerationEngine(loaded)
    engine.eos_ids = set()
    (completion,) = engine.generate(PROMPTS[:1], GenerationSettings(max_new_tokens=5))
    assert len(completion.choices[0].token_ids) == 5 and completion.choices[0].finish_reason == "length"


def test_stop_sequence_ends_the_text_before_it(loaded) -> None:
    engine = GenerationEngine(loaded)
    engine.eos_ids = set()
    (free,) = engine.generate(PROMPTS[:1], GenerationSettings(max_new_tokens=16))
    text = engine.loaded.tokenizer.decode(list(free.choices[0].token_ids))
    stop = text.strip()[3:6]  # three characters from inside the free-running answer
    assert stop.strip(), text
    (stopped,) = engine.generate(PROMPTS[:1], GenerationSettings(max_new_tokens=16, stop=[stop]))
    assert stop not in stopped.text and stopped.choices[0].finish_reason == "stop"
    assert text.strip().startswith(stopped.text)


def test_streaming_yields_the_same_text_as_generate(loaded) -> None:
    engine = GenerationEngine(loaded)
    settings = GenerationSettings(max_new_tokens=12)
    pieces = list(engine.stream(PROMPTS[1], settings))
    (completion,) = engine.generate(PROMPTS[1:2], settings)
    assert len(pieces) > 1
    assert "".join(pieces).strip() == completion.text


def test_repetition_penalty_changes_greedy_output(loaded) -> None:
    engine = GenerationEngine(loaded)
    engine.eos_ids = set()
    plain = engine.generate(PROMPTS[:1], GenerationSettings(max_new_tokens=20))[0]
    penalised = engine.generate(PROMPTS[:1], GenerationSettings(max_new_tokens=20, repetition_penalty=5.0))[0]
    assert plain.choices[0].token_ids != penalised.choices[0].token_ids
    # A heavy penalty leaves fewer repeated tokens.
    assert len(set(penalised.choices[0].token_ids)) >= len(set(plain.choices[0].token_ids))


def test_prompt_longer_than_the_context_window_is_refused() -> None:
    loaded = tiny_model("causal")
    engine = GenerationEngine(loaded)
    long_prompt = "word " * 600  # the tiny model's window is 512 tokens
    with pytest.raises(PromptTooLongError, match="exceeds the model's context window of 512 tokens"):
        engine.generate([long_prompt], GenerationSettings(max_new_tokens=8))
    fits = "word " * 100
    prompt_tokens = len(engine.encode(fits))
    engine.generate([fits], GenerationSettings(max_new_tokens=512 - prompt_tokens))  # exactly fills the window
    with pytest.raises(PromptTooLongError):
        engine.generate([fits], GenerationSettings(max_new_tokens=513 - prompt_tokens))


def test_chat_prompt_uses_the_chat_template() -> None:
    loaded = tiny_model("causal")
    engine = GenerationEngine(loaded)
    text = engine.format_prompt("Summarise this.", chat=True)
    assert text.startswith("<|im_start|>user\nSummarise this.<|im_end|>") and text.endswith("<|im_start|>assistant\n")
    assert engine.format_prompt("Summarise this.", chat=False) == "Summarise this."


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("temperature", -0.5, ["temperature", "-0.5", "greater than or equal to 0"]),
        ("top_p", 0.0, ["top_p", "greater than 0"]),
        ("top_p", 1.5, ["top_p", "less than or equal to 1"]),
        ("top_k", -1, ["top_k", "-1"]),
        ("max_new_tokens", 0, ["max_new_tokens", "0"]),
        ("stop", [""], ["stop", "empty"]),
    ],
)
def test_bad_settings_name_the_field(field: str, value, words: list[str]) -> None:
    with pytest.raises(InvalidValueError) as caught:
        GenerationSettings(**{field: value})
    for word in words:
        assert word in str(caught.value)


def test_several_answers_need_sampling() -> None:
    with pytest.raises(InvalidValueError, match="needs sampling"):
        GenerationSettings(num_return_sequences=2)
    assert GenerationSettings(temperature=0).greedy and not GenerationSettings(temperature=0.7).greedy


@pytest.mark.parametrize("joiner", ["shorter", "longer"])
def test_rows_joining_a_running_batch_get_the_same_answers(joiner: str) -> None:
    # Per-request max_new_tokens makes the first rows finish early, so waiting prompts join a batch
    # already decoding: their cache is merged, left-padded on whichever side is shorter. The rows go
    # to the decoder in the order given (generate() would sort them longest first).
    loaded = sharpen_attention(tiny_model("causal", seed=3))
    short, long = "Hi.", "#Person1#: " + "I would like to change my booking to next Friday, please. " * 4
    first = [short, short] if joiner == "longer" else [long, long]
    waiting = [long, long] if joiner == "longer" else [short, short]
    prompts = first + [PROMPTS[1]] + waiting
    limits = (2, 3, 14, 10, 9)

    def decode(batch_size: int) -> list[tuple[int, ...]]:
        engine = GenerationEngine(loaded, batch_size=batch_size)
        engine.eos_ids = set()  # every row runs to its own max_new_tokens
        rows = [
            engine._new_row(i, 0, engine.encode(p), GenerationSettings(max_new_tokens=n))
            for i, (p, n) in enumerate(zip(prompts, limits, strict=True))
        ]
        for _ in engine._run(rows):
            pass
        return [tuple(row.generated) for row in rows]

    joined, alone = decode(3), decode(1)
    assert [len(tokens) for tokens in joined] == list(limits)
    assert joined == alone


class ForcedTokens:
    """A constraint that allows exactly one token at each step, then finishes (a stand-in grammar)."""

    def __init__(self, tokens: list[int]) -> None:
        self.tokens, self.accepted = tokens, []

    def mask(self, scores):
        masked = torch.full_like(scores, float("-inf"))
        masked[0, self.tokens[len(self.accepted)]] = 0.0
        return masked

    def accept(self, token: int) -> None:
        self.accepted.append(token)

    @property
    def finished(self) -> bool:
        return len(self.accepted) == len(self.tokens)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_row_constraint_decides_every_token_and_ends_the_row(loaded, temperature: float) -> None:
    engine = GenerationEngine(loaded, batch_size=3)
    settings = GenerationSettings(max_new_tokens=20, temperature=temperature, top_k=5, seed=3)
    free = engine.generate(PROMPTS[:3], settings)
    forced = [11, 12, 13, 14]
    rows = [engine.new_rows(i, engine.encode(p), settings)[0] for i, p in enumerate(PROMPTS[:3])]
    rows[1].constraint = ForcedTokens(forced)
    for _ in engine.decode(ListSource(rows)):
        pass
    assert rows[1].generated == forced and rows[1].finish_reason == "stop"
    if temperature == 0.0:  # the unconstrained rows of the same batch keep their own answers
        assert rows[0].generated == list(free[0].choices[0].token_ids)
        assert rows[2].generated == list(free[2].choices[0].token_ids)
