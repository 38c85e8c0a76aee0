"""The builtin heated dialogues: rude dialogues with neutral summaries, for the detoxification lab.

The set is only useful if the default toxicity scorer (alt-profanity-check) rates the dialogues as
toxic and the reference summaries as clean: a PPO run with a toxicity reward then has rude language
to move away from, and the references show the target behaviour.
"""

import pytest

from genlab.data.builtin import BUILTIN_HEATED, builtin_heated_dialogues
from genlab.data.loaders import BUILTIN_SOURCES, DataError, load_examples
from genlab.evaluation.metrics.toxicity import load_toxicity_scorer

FIELDS = ("id", "dialogue", "summary", "topic")


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return builtin_heated_dialogues()


@pytest.fixture(scope="module")
def scorer():
    return load_toxicity_scorer()


def test_file_ships_with_the_package() -> None:
    assert BUILTIN_HEATED.is_file()
    assert BUILTIN_HEATED.suffix == ".jsonl"  # covered by package-data "data/builtin/*.jsonl"


def test_at_least_64_rows_with_unique_ids(rows: list[dict[str, str]]) -> None:
    assert len(rows) >= 64
    ids = [row["id"] for row in rows]
    assert len(set(ids)) == len(ids)
    assert all(row_id.startswith("heated-") for row_id in ids)


def test_every_field_present_and_non_empty(rows: list[dict[str, str]]) -> None:
    for row in rows:
        assert set(row) == set(FIELDS), row.get("id")
        for field in FIELDS:
            assert isinstance(row[field], str) and row[field].strip(), (row["id"], field)


def test_dialogues_follow_the_dialogsum_layout(rows: list[dict[str, str]]) -> None:
    for row in rows:
        turns = row["dialogue"].split("\n")
        assert 4 <= len(turns) <= 10, row["id"]
        for number, turn in enumerate(turns):
            speaker = "#Person1#: " if number % 2 == 0 else "#Person2#: "
            assert turn.startswith(speaker), (row["id"], number)
        assert 60 <= len(row["dialogue"].split()) <= 160, row["id"]


def test_loads_through_load_examples(rows: list[dict[str, str]]) -> None:
    examples = load_examples("builtin:heated", input_field="dialogue", target_field="summary")
    assert len(examples) == len(rows)
    assert [example.id for example in examples] == [row["id"] for row in rows]
    assert examples[0].input == rows[0]["dialogue"]
    assert examples[0].target == rows[0]["summary"]
    assert all(set(example.fields) == {"topic"} for example in examples)
    assert len(load_examples("builtin:heated", limit=5)) == 5


def test_heated_is_listed_with_the_builtin_sources() -> None:
    assert "builtin:heated" in BUILTIN_SOURCES
    with pytest.raises(DataError, match="builtin:heated"):
        load_examples("builtin:poems")


def test_builtin_default_is_unchanged() -> None:
    assert load_examples("builtin")[0].id == "demo-001"


def test_dialogues_score_as_toxic(rows: list[dict[str, str]], scorer) -> None:
    scores = scorer.score([row["dialogue"] for row in rows])
    assert sum(scores) / len(scores) > 0.5
    assert sum(score > 0.5 for score in scores) / len(scores) > 0.8  # most of them, not a few extreme ones


def test_summaries_score_as_clean(rows: list[dict[str, str]], scorer) -> None:
    scores = scorer.score([row["summary"] for row in rows])
    worst = max(range(len(rows)), key=scores.__getitem__)
    assert scores[worst] < 0.2, (rows[worst]["id"], scores[worst])


def test_each_builtin_source_names_its_own_file_for_lineage() -> None:
    from genlab.data.builtin import BUILTIN_DIALOGUES, BUILTIN_HEATED, source_file

    assert source_file("builtin") == BUILTIN_DIALOGUES
    assert source_file("builtin:heated") == BUILTIN_HEATED
    assert source_file("org/some-hub-dataset") is None
