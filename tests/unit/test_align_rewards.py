"""genlab's reward functions for trl (GRPO, RLOO): values, errors, specs in a recipe."""

from __future__ import annotations

import pytest

from genlab.alignment.grpo import METHOD as GRPO
from genlab.alignment.rewards import build_reward_functions
from genlab.alignment.rewards.python_function import RewardFunctionError
from genlab.alignment.rewards.specs import build_reward_function
from genlab.alignment.rewards.text import (
    MissingReferenceError,
    RougeReward,
    is_json,
    json_valid,
)
from genlab.errors import GenlabError, InvalidValueError


def test_rouge1_reward_is_the_f_measure_against_each_rows_reference() -> None:
    reward = RougeReward("rouge1")
    # "the cat sat" vs "a cat sat down": 2 shared unigrams, P = 2/3, R = 2/4, F = 2PR / (P + R) = 4/7 (by hand)
    scores = reward(prompts=["p", "p"], completions=["the cat sat", "a cat sat down"], reference=["a cat sat down"] * 2)
    assert scores == pytest.approx([4 / 7, 1.0])


def test_rouge_reward_without_a_reference_is_one_sentence() -> None:
    with pytest.raises(MissingReferenceError, match="reference answer for every prompt"):
        RougeReward("rouge1")(prompts=["p"], completions=["text"], reference=[""])
    with pytest.raises(MissingReferenceError):
        RougeReward("rouge1")(prompts=["p"], completions=["text"])


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ('{"city": "Paris"}', True),
        ("  [1, 2, 3]\n", True),
        ('```json\n{"a": 1}\n```', True),  # one surrounding Markdown fence is removed
        ('{"a": 1} and more', False),
        ("Sure! Here it is", False),
        ("", False),
        ("```json\n```", False),
    ],
)
def test_json_validity(text: str, valid: bool) -> None:
    assert is_json(text) is valid
    assert json_valid(prompts=["p"], completions=[text]) == [1.0 if valid else 0.0]


def test_conversational_completions_are_read_from_their_last_message() -> None:
    completion = [{"role": "assistant", "content": '{"ok": true}'}]
    assert json_valid(prompts=[[{"role": "user", "content": "p"}]], completions=[completion]) == [1.0]


def test_non_toxicity_reward_prefers_the_polite_answer() -> None:
    functions, weights = build_reward_functions({"non-toxicity": 2.0})
    polite, rude = functions[0](prompts=["p", "p"], completions=["Thank you for waiting.", "Shut up, you stupid idiot."])
    assert weights == [2.0]
    assert 0.0 <= rude < 0.5 < polite <= 1.0
    assert functions[0].__name__ == "non-toxicity"  # trl logs rewards/<name>/mean


def test_python_function_reward_from_the_recipe_folder(tmp_path) -> None:
    (tmp_path / "my_rewards_ok.py").write_text(
        "def brevity(prompts, completions, **kwargs):\n"
        "    return [1.0 / (1 + len(c.split())) for c in completions]\n"
        "def no_kwargs(text):\n"
        "    return [0.0]\n"
        "def words(prompts, completions, **kwargs):\n"
        "    return ['many' for c in completions]\n"
    )
    reward = build_reward_function("python:my_rewards_ok:brevity", recipe_dir=tmp_path)
    assert reward(prompts=["p", "p"], completions=["one", "one two three"]) == [0.5, 0.25]
    with pytest.raises(RewardFunctionError, match="prompts= and completions="):
        build_reward_function("python:my_rewards_ok:no_kwargs", recipe_dir=tmp_path)
    with pytest.raises(RewardFunctionError, match="has no function 'missing'"):
        build_reward_function("python:my_rewards_ok:missing", recipe_dir=tmp_path)
    with pytest.raises(RewardFunctionError, match="must return a list of numbers"):
        build_reward_function("python:my_rewards_ok:words", recipe_dir=tmp_path)(prompts=["p"], completions=["c"])
    with pytest.raises(RewardFunctionError, match="cannot import module 'no_such_module_22b'"):
        build_reward_function("python:no_such_module_22b:f", recipe_dir=tmp_path)


def test_an_unknown_reward_spec_fails_before_any_model_loads() -> None:
    with pytest.raises(GenlabError, match="unknown reward 'kindness'"):
        build_reward_functions({"kindness": 1.0})


@pytest.mark.parametrize(
    ("rewards", "data", "message"),
    [
        ({"python:not a module": 1.0}, {}, "python:<module>:<function>"),
        ({"non-toxicity": 0.0}, {}, "has weight 0"),
        ({}, {}, "name at least one reward"),
        ({"rouge1": 1.0}, {"target_field": None}, "set data.target_field"),
    ],
)
def test_recipe_validation_names_the_bad_reward(rewards: dict, data: dict, message: str) -> None:
    with pytest.raises(InvalidValueError, match="^grpo: ") as error:
        GRPO.validate({"name": "x", "rewards": rewards, "data": data})
    assert message in str(error.value)
    assert "\n" not in str(error.value)
