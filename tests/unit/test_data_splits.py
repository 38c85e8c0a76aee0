import random

import pytest

from genlab.data import Example, split_examples, train_validation_test
from genlab.errors import InvalidValueError


def make_examples(count: int) -> list[Example]:
    return [Example(id=f"row-{index}", input=f"text {index}", target=f"summary {index}") for index in range(count)]


def ids(examples: list[Example]) -> list[str]:
    return [example.id for example in examples]


EXAMPLES = make_examples(50)


def test_same_seed_gives_the_same_split() -> None:
    first = split_examples(EXAMPLES, test_size=0.2, seed=7)
    second = split_examples(list(EXAMPLES), test_size=0.2, seed=7)
    assert first == second


def test_different_seeds_give_different_splits() -> None:
    _, test_a = split_examples(EXAMPLES, test_size=0.2, seed=1)
    _, test_b = split_examples(EXAMPLES, test_size=0.2, seed=2)
    assert ids(test_a) != ids(test_b)


def test_seed_42_split_is_pinned() -> None:
    # Expected value: random.Random(42).shuffle(list(range(10))) gives [7, 3, 2, 8, 5, 6, 9, 4, 0, 1]
    # on CPython 3.11; the first 3 indices, sorted, are the test rows. A change here breaks
    # every user's reproduced split, so it must be deliberate.
    train, test = split_examples(make_examples(10), test_size=3)
    assert ids(test) == ["row-2", "row-3", "row-7"]
    assert ids(train) == ["row-0", "row-1", "row-4", "row-5", "row-6", "row-8", "row-9"]


@pytest.mark.parametrize(("test_size", "expected_test_rows"), [(0.2, 10), (0.5, 25), (7, 7), (1, 1), (49, 49)])
def test_parts_are_disjoint_cover_everything_and_have_the_asked_size(
    test_size: float, expected_test_rows: int
) -> None:
    train, test = split_examples(EXAMPLES, test_size=test_size, seed=3)
    assert len(test) == expected_test_rows
    assert len(train) == len(EXAMPLES) - expected_test_rows
    assert not set(ids(train)) & set(ids(test))
    assert sorted(ids(train) + ids(test)) == sorted(ids(EXAMPLES))


def test_parts_keep_source_order() -> None:
    train, test = split_examples(EXAMPLES, test_size=0.3, seed=5)
    position = {example.id: index for index, example in enumerate(EXAMPLES)}
    assert [position[i] for i in ids(train)] == sorted(position[i] for i in ids(train))
    assert [position[i] for i in ids(test)] == sorted(position[i] for i in ids(test))


def test_global_random_state_is_untouched() -> None:
    random.seed(123)
    expected = random.random()
    random.seed(123)
    split_examples(EXAMPLES, test_size=0.2, seed=9)
    assert random.random() == expected


@pytest.mark.parametrize("test_size", [0, 0.0, 1.0, 1.5, -0.1, -1, 50, 51, 0.001, True, "0.2", None])
def test_bad_test_size_is_refused_naming_the_value(test_size: object) -> None:
    with pytest.raises(InvalidValueError) as error:
        split_examples(EXAMPLES, test_size=test_size)
    assert str(error.value).startswith(f"test_size={test_size!r} is not allowed")


def test_too_few_examples_to_split() -> None:
    with pytest.raises(InvalidValueError, match="cannot split 1 example"):
        split_examples(make_examples(1), test_size=0.5)


def test_train_validation_test_sizes_and_coverage() -> None:
    train, validation, test = train_validation_test(EXAMPLES, validation=0.1, test=10, seed=11)
    assert (len(train), len(validation), len(test)) == (35, 5, 10)
    parts = [set(ids(part)) for part in (train, validation, test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == set(ids(EXAMPLES))


def test_three_way_split_holds_out_the_same_test_rows_as_two_way() -> None:
    _, _, test = train_validation_test(EXAMPLES, validation=5, test=10, seed=13)
    _, two_way_test = split_examples(EXAMPLES, test_size=10, seed=13)
    assert test == two_way_test


def test_three_way_split_must_leave_training_rows() -> None:
    with pytest.raises(InvalidValueError, match="leaves none to train on"):
        train_validation_test(EXAMPLES, validation=0.5, test=0.5)


def test_three_way_split_names_a_bad_validation_size() -> None:
    with pytest.raises(InvalidValueError, match=r"^validation=2\.0 is not allowed"):
        train_validation_test(EXAMPLES, validation=2.0, test=0.1)
