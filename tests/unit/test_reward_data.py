"""Preference pairs for reward models: the builtin summary preferences, files, rankings, the split by prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genlab.alignment.reward_data import (
    BUILTIN_SUMMARY_PREFERENCES,
    DEGRADATIONS,
    RUDE_PHRASES,
    VAGUE_SUMMARIES,
    PreferenceDataError,
    build_summary_preferences,
    load_preference_pairs,
    split_by_prompt,
    summary_prompt,
)
from genlab.data.builtin import builtin_dialogues
from genlab.errors import InvalidValueError


def test_summary_preferences_pair_each_reference_with_each_degradation() -> None:
    dialogues = builtin_dialogues()
    pairs = build_summary_preferences()
    assert len(pairs) == len(dialogues) * len(DEGRADATIONS)
    summaries = {row["summary"] for row in dialogues}
    for index, row in enumerate(dialogues):
        group = pairs[index * len(DEGRADATIONS) : (index + 1) * len(DEGRADATIONS)]
        assert [p.kind for p in group] == list(DEGRADATIONS)  # interleaved: the first N pairs cover every kind
        assert {p.prompt for p in group} == {summary_prompt(row["dialogue"])}
        assert {p.chosen for p in group} == {row["summary"]}
        by_kind = {p.kind: p.rejected for p in group}
        assert by_kind["mismatched"] in summaries and by_kind["mismatched"] != row["summary"]
        truncated = by_kind["truncated"]
        assert row["summary"].startswith(truncated) and len(truncated) < len(row["summary"]) and not truncated.endswith(".")
        assert any(phrase in by_kind["rude"] for phrase in RUDE_PHRASES)
        assert by_kind["rude"].replace(next(p for p in RUDE_PHRASES if p in by_kind["rude"]), "").split() == row["summary"].split()
        assert by_kind["vague"] in VAGUE_SUMMARIES
    assert row["dialogue"] in pairs[-1].prompt and "What was going on?" in pairs[-1].prompt


def test_summary_preferences_are_seeded() -> None:
    assert build_summary_preferences(seed=3) == build_summary_preferences(seed=3)
    assert build_summary_preferences(seed=3) != build_summary_preferences(seed=4)
    assert [p.kind for p in build_summary_preferences(kinds=["rude"])] == ["rude"] * len(builtin_dialogues())
    with pytest.raises(InvalidValueError, match="choose from mismatched"):
        build_summary_preferences(kinds=["boring"])


def test_split_by_prompt_holds_out_whole_prompts() -> None:
    pairs = build_summary_preferences()
    train, validation = split_by_prompt(pairs, 0.25, seed=0)
    assert len(train) + len(validation) == len(pairs)
    assert not {p.prompt for p in train} & {p.prompt for p in validation}
    assert len({p.prompt for p in validation}) == 16  # a quarter of 64 prompts
    assert split_by_prompt(pairs, 5, seed=1) == split_by_prompt(pairs, 5, seed=1)
    assert len({p.prompt for p in split_by_prompt(pairs, 5, seed=1)[1]}) == 5
    with pytest.raises(InvalidValueError, match="holds out 64 of 64 prompts"):
        split_by_prompt(pairs, 64, seed=0)


def test_pairs_file_and_builtin_source(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    rows = [{"prompt": f"q{i}", "chosen": "good", "rejected": "bad", "kind": "x"} for i in range(3)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    pairs = load_preference_pairs(str(path))
    assert [p.to_dict() for p in pairs] == rows
    assert len(load_preference_pairs(str(path), limit=2)) == 2
    assert len(load_preference_pairs(BUILTIN_SUMMARY_PREFERENCES)) == len(builtin_dialogues()) * len(DEGRADATIONS)


def test_rankings_file_becomes_pairs(tmp_path: Path) -> None:
    path = tmp_path / "rankings.jsonl"
    path.write_text(json.dumps({"prompt": "q", "completions": ["a", "b", "c"], "ranks": [2, 1, 3]}) + "\n", encoding="utf-8")
    pairs = load_preference_pairs(str(path))
    # K=3 ranked completions give K(K-1)/2 = 3 pairs, best first: b > a, b > c, a > c
    assert [(p.chosen, p.rejected) for p in pairs] == [("b", "a"), ("b", "c"), ("a", "c")]


@pytest.mark.parametrize(
    ("content", "message"),
    [('{"prompt": "q", "chosen": "a"}', "line 1 has no field 'rejected'"),
     ('{"prompt": "q", "chosen": "", "rejected": "b"}', "field 'chosen' must be non-empty text"),
     ("not json", "line 1 is not valid JSON")],
)  # fmt: skip
def test_bad_pair_files_are_one_sentence(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(content + "\n", encoding="utf-8")
    with pytest.raises(PreferenceDataError, match=message) as error:
        load_preference_pairs(str(path))
    assert "\n" not in str(error.value)


def test_missing_sources_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(PreferenceDataError, match="no such preference file"):
        load_preference_pairs(str(tmp_path / "nope.jsonl"))
    with pytest.raises(PreferenceDataError, match="builtin:summary-preferences"):
        load_preference_pairs("builtin:other")
