"""Fine-tuning recipes' three-way split: training, validation and a seeded test part (or a separate test
file), disjoint, the test never trained on nor used for validation."""

from pathlib import Path

import pytest

from genlab.errors import GenlabError
from genlab.models.load import load_model
from genlab.models.tiny import save_tiny_model
from genlab.tuning.assemble import assemble, write_test_split
from genlab.tuning.recipe import FinetuneRecipe


def recipe(model: Path, **data: object) -> FinetuneRecipe:
    return FinetuneRecipe.model_validate({
        "name": "tiny", "model": str(model), "method": "lora",
        "data": {"path": "builtin", "limit": 30, "validation_size": 6, "max_length": 512, **data},
        "evaluation": {"enabled": False},
    })  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    folder = save_tiny_model(tmp_path_factory.mktemp("tiny") / "causal", seed=2)
    return folder, load_model(str(folder))


def test_a_seeded_test_part_is_held_out_before_validation(tiny, tmp_path: Path) -> None:
    folder, loaded = tiny
    data = assemble(recipe(folder, test_size=5), loaded)
    again = assemble(recipe(folder, test_size=5), loaded)
    test_ids = [row.id for row in data.test_rows]
    validation_ids = {row.id for row in data.validation_rows}
    assert len(test_ids) == 5 and test_ids == [row.id for row in again.test_rows]  # seeded
    assert len(validation_ids) == 6 and not validation_ids & set(test_ids)
    assert len(data.train) + len(data.train.dropped) == 30 - 5 - 6  # the rest is trained on
    written = write_test_split(data, tmp_path, recipe(folder).data)
    assert written is not None and len(written.read_text().splitlines()) == 5
    without = assemble(recipe(folder), loaded)
    assert without.test_rows == [] and write_test_split(without, tmp_path, recipe(folder).data) is None


def test_a_separate_test_file_or_a_part_not_both(tiny, tmp_path: Path) -> None:
    folder, loaded = tiny
    test_file = tmp_path / "test.jsonl"
    test_file.write_text('{"dialogue": "a", "summary1": "b", "summary2": "c"}\n')
    data = assemble(recipe(folder, test=str(test_file), test_target_field="summary1,summary2"), loaded)
    assert write_test_split(data, tmp_path, recipe(folder).data) == test_file
    with pytest.raises((GenlabError, ValueError), match="data.test and data.test_size"):
        recipe(folder, test=str(test_file), test_size=3)
