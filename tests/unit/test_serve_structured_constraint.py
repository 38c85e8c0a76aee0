"""The grammar constraint on its own: masks, padding of a wider logits vocabulary, bounded strings, errors."""

from __future__ import annotations

import json
import re

import pytest
import torch

from genlab.generation.constrained import GrammarError, Grammars, allowed_tokens, bounded_strings
from genlab.models.tiny import tiny_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def test_logits_wider_than_the_tokenizer_never_allow_the_padding_ids(tokenizer) -> None:
    width = len(tokenizer) + 8  # padded embedding rows, as many checkpoints have
    grammars = Grammars(tokenizer, width, [tokenizer.eos_token_id])
    constraint = grammars.choice(["yes", "no"])()
    scores = torch.zeros(1, width)
    scores[0, len(tokenizer) :] = 100.0  # the model would love a padding id
    masked = constraint.mask(scores)
    assert torch.isinf(masked[0, len(tokenizer) :]).all()
    assert torch.equal(scores[0, len(tokenizer) :], torch.full((8,), 100.0))  # the raw scores are left as they were
    first = [tokenizer.decode([int(t)]) for t in allowed_tokens(constraint, width)]
    assert first and all("yes".startswith(text) or "no".startswith(text) for text in first)


def test_a_constraint_follows_a_choice_to_its_end_and_then_allows_only_the_end_of_sequence(tokenizer) -> None:
    grammars = Grammars(tokenizer, len(tokenizer), [tokenizer.eos_token_id])
    constraint = grammars.choice(["maybe"])()
    for token in tokenizer("maybe", add_special_tokens=False)["input_ids"]:
        assert token in allowed_tokens(constraint, len(tokenizer)).tolist()
        constraint.accept(token)
    assert allowed_tokens(constraint, len(tokenizer)).tolist() == [tokenizer.eos_token_id]
    assert not constraint.finished
    constraint.accept(tokenizer.eos_token_id)
    assert constraint.finished


def test_a_forbidden_token_is_an_error_not_a_silent_drift(tokenizer) -> None:
    constraint = Grammars(tokenizer, len(tokenizer), [tokenizer.eos_token_id]).choice(["yes"])()
    with pytest.raises(RuntimeError, match="forbids"):
        constraint.accept(tokenizer.convert_tokens_to_ids("}"))


def test_bounded_strings_become_patterns_of_unescaped_characters() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 3}, "b": {"type": "string", "minLength": 1},
              "c": {"type": "string", "maxLength": 2, "enum": ["x"]}, "d": {"type": "string"}}}  # fmt: skip
    out = bounded_strings(schema)
    pattern = re.compile(out["properties"]["a"]["pattern"])
    assert pattern.fullmatch("ab c"[:3]) and not pattern.fullmatch("abcd")
    assert not pattern.fullmatch("a\x07") and not pattern.fullmatch('a"') and not pattern.fullmatch("a\\")
    assert re.fullmatch(out["properties"]["b"]["pattern"], "long enough text")
    assert out["properties"]["c"] == schema["properties"]["c"] and out["properties"]["d"] == {"type": "string"}
    assert "maxLength" in schema["properties"]["a"]  # the caller's schema is not changed
    json.dumps(out)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda g: g.json_schema({"type": "nonsense"}, "response_format's JSON schema"), ["response_format's JSON schema", "nonsense"]),
        (lambda g: g.regex("(((", "structured_outputs.regex"), ["structured_outputs.regex", "parenthesis"]),
    ],
)
def test_what_cannot_be_compiled_is_one_sentence_naming_it(tokenizer, make, words) -> None:
    with pytest.raises(GrammarError) as raised:
        make(Grammars(tokenizer, len(tokenizer), [tokenizer.eos_token_id]))
    message = str(raised.value)
    assert all(word in message for word in words) and "\n" not in message and ".cc:" not in message
