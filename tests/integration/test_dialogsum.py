from pathlib import Path

import pytest

from genlab.data import load_dialogsum, load_examples

pytestmark = pytest.mark.integration


def test_local_dev_split_loads_all_500_dialogues(dialogsum_dev: Path) -> None:
    examples = load_dialogsum(path=dialogsum_dev)
    assert len(examples) == 500  # the DialogSum dev split (../shared/datasets/README.md)
    assert [example.id for example in examples[:3]] == ["dev_0", "dev_1", "dev_2"]
    assert len({example.id for example in examples}) == 500
    assert all(example.input.strip() and example.target.strip() for example in examples)
    assert all(example.input.startswith("#Person1#:") for example in examples)
    assert all(set(example.fields) == {"topic"} and example.fields["topic"].strip() for example in examples)


def test_generic_loader_with_limit_gives_the_first_rows(dialogsum_dev: Path) -> None:
    first = load_examples(dialogsum_dev, limit=20)  # default mapping: dialogue -> summary, id from fname
    assert first == load_dialogsum(path=dialogsum_dev)[:20]
    assert [example.id for example in first] == [f"dev_{index}" for index in range(20)]


def test_dialogsum_limit(dialogsum_dev: Path) -> None:
    assert len(load_dialogsum(path=dialogsum_dev, limit=5)) == 5
