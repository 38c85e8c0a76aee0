"""Reward functions: non-toxicity, any classifier's named label, spec strings, and the trl adapter."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from genlab.alignment.reward import (
    ClassifierReward,
    NonToxicityReward,
    RewardFunction,
    RewardSpecError,
    as_trl_reward_func,
    load_reward,
    reward_input_ids,
    score_token_ids,
)
from genlab.errors import GenlabError, InvalidValueError

POLITE = "Thank you so much for your help, have a lovely evening."
RUDE = "Shut up, you stupid idiot, this is crap."


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama sequence classifier with labels (negative, positive), saved as a folder."""
    import torch
    from transformers import AutoModelForSequenceClassification, LlamaConfig

    from genlab.models.tiny import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id,
        id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1},
    )  # fmt: skip
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config)
    folder = tmp_path_factory.mktemp("tiny-classifier")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_non_toxicity_prefers_the_polite_sentence() -> None:
    reward = NonToxicityReward()  # the alt-profanity-check pack
    polite, rude = reward(["Reply to the customer."] * 2, [POLITE, RUDE])
    assert 0.0 <= rude < polite <= 1.0
    assert polite - rude > 0.5  # the pack is confident on both (p_offensive ~0.0 vs ~1.0)
    assert isinstance(reward, RewardFunction)


def test_non_toxicity_is_one_minus_the_scorer() -> None:
    class Fixed:
        def score(self, texts: list[str]) -> list[float]:
            return [0.25 * (i + 1) for i in range(len(texts))]

    reward = NonToxicityReward(scorer=Fixed())
    assert reward(["p", "p", "p"], ["a", "b", "c"]) == pytest.approx([0.75, 0.5, 0.25])
    with pytest.raises(InvalidValueError, match="one prompt per response"):
        reward(["p"], ["a", "b"])


def test_non_toxicity_with_a_classifier_rewards_the_other_label(tiny_classifier: Path) -> None:
    non_toxic = NonToxicityReward(str(tiny_classifier), "negative")
    positive = ClassifierReward(str(tiny_classifier), "positive")
    texts = [POLITE, RUDE]
    # two labels, softmax: 1 - P(negative) == P(positive)
    assert non_toxic(["p", "p"], texts) == pytest.approx(positive(["p", "p"], texts), abs=1e-6)


def test_classifier_reward_is_the_probability_of_the_named_label(tiny_classifier: Path) -> None:
    positive = ClassifierReward(str(tiny_classifier), "positive")
    negative = ClassifierReward(str(tiny_classifier), "NEGATIVE")  # labels match case-insensitively
    texts = [POLITE, RUDE, "ok"]
    p, n = positive(["q"] * 3, texts), negative(["q"] * 3, texts)
    assert all(0.0 < x < 1.0 for x in p)
    assert [a + b for a, b in zip(p, n)] == pytest.approx([1.0] * 3, abs=1e-6)
    assert len(set(round(x, 6) for x in p)) > 1  # the texts are really read, not a constant


def test_a_label_the_classifier_lacks_is_one_sentence_listing_its_labels(tiny_classifier: Path) -> None:
    with pytest.raises(InvalidValueError) as error:
        ClassifierReward(str(tiny_classifier), "toxic")
    message = str(error.value)
    assert "'toxic'" in message and "negative, positive" in message and "\n" not in message


def test_load_reward_specs(tiny_classifier: Path) -> None:
    assert isinstance(load_reward("non-toxicity"), NonToxicityReward)
    classifier = load_reward(f"classifier:{tiny_classifier}:positive")
    assert isinstance(classifier, ClassifierReward) and classifier.name.endswith(":positive")
    custom = load_reward(f"non-toxicity:{tiny_classifier}:negative")
    assert isinstance(custom, NonToxicityReward)
    assert custom(["p"], [POLITE]) == pytest.approx(classifier(["p"], [POLITE]), abs=1e-6)


@pytest.mark.parametrize(
    ("spec", "message"),
    [("happiness", "unknown reward 'happiness'"), ("classifier:just-a-model", "needs a model and a label"),
     ("non-toxicity:", "needs a model and a label"), ("/no/such/reward-model", "unknown reward")],
)  # fmt: skip
def test_bad_specs_are_one_sentence(spec: str, message: str) -> None:
    with pytest.raises(GenlabError, match=message) as error:
        load_reward(spec)
    assert "\n" not in str(error.value)
    if isinstance(error.value, RewardSpecError) and "unknown" in message:
        assert "non-toxicity" in str(error.value) and "classifier:" in str(error.value)


def test_trl_adapter_has_trls_signature_and_reads_conversations() -> None:
    seen: list[tuple[list[str], list[str]]] = []

    class Length:
        name = "length"

        def __call__(self, prompts: list[str], responses: list[str]) -> list[float]:
            seen.append((list(prompts), list(responses)))
            return [float(len(r)) for r in responses]

    func = as_trl_reward_func(Length())
    parameters = inspect.signature(func).parameters
    assert list(parameters)[:2] == ["prompts", "completions"]
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    assert func.__name__ == "length"
    # standard format, with the extra keyword arguments GRPOTrainer passes
    assert func(prompts=["a", "b"], completions=["xyz", "w"], completion_ids=[[1], [2]], trainer_state=None) == [3.0, 1.0]
    # conversational format: the last user turn and the assistant's reply
    prompts = [[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]]
    completions = [[{"role": "assistant", "content": "hello"}]]
    assert func(prompts, completions) == [5.0]
    assert seen[-1] == (["hi"], ["hello"])


def test_trl_adapter_wraps_a_real_reward() -> None:
    func = as_trl_reward_func(load_reward("non-toxicity"))
    scores = func(["Reply."] * 2, [POLITE, RUDE])
    assert scores[0] > scores[1] and func.__name__ == "non-toxicity"


def test_a_chat_formatted_prompt_is_not_wrapped_twice() -> None:
    from genlab.models.tiny import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    raw = "Dialogue:\n\nA: hi\nB: hello\n\nWhat was going on?\n"
    formatted = tokenizer.apply_chat_template([{"role": "user", "content": raw}], tokenize=False, add_generation_prompt=True)
    assert formatted != raw
    assert reward_input_ids(tokenizer, formatted, "They greet.", "chat") == reward_input_ids(tokenizer, raw, "They greet.", "chat")
    plain = reward_input_ids(tokenizer, raw, "They greet.", "plain")
    assert plain[-1] == tokenizer.eos_token_id and plain != reward_input_ids(tokenizer, raw, "They greet.", "chat")


def test_scores_do_not_depend_on_the_batch_padding() -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, LlamaConfig

    config = LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, pad_token_id=0, num_labels=1,
    )  # fmt: skip
    torch.manual_seed(1)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    short, long = [5, 6, 7], [5, 6, 7, 8, 9, 10, 11]
    alone = score_token_ids(model, [short], 0)
    together = score_token_ids(model, [long, short], 0, batch_size=2)
    assert together[1] == pytest.approx(alone[0], abs=1e-5)
    assert together[0] != pytest.approx(together[1], abs=1e-5)
