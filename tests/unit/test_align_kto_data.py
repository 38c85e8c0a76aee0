"""KTO's unpaired rows made from genlab's preference pairs and rankings."""

from __future__ import annotations

import json

from genlab.alignment.dpo_data import PreferencePair
from genlab.alignment.kto.data import kto_rows, read_preference_pairs, unpaired_rows


def test_pairs_become_desirable_and_undesirable_answers() -> None:
    pairs = [PreferencePair("q1", "kind", "rude"), PreferencePair("q2", "yes", "no")]
    rows, ambiguous = unpaired_rows(pairs)
    assert rows == [("q1", "kind", True), ("q1", "rude", False), ("q2", "yes", True), ("q2", "no", False)]
    assert ambiguous == 0


def test_rankings_keep_each_answer_once_and_drop_the_middle_rank(tmp_path) -> None:
    path = tmp_path / "rankings.jsonl"
    path.write_text(json.dumps({"prompt": "q", "completions": ["b", "a", "c"], "ranks": [2, 1, 3]}) + "\n")
    pairs = read_preference_pairs(path, "rankings")
    assert [(p.chosen, p.rejected) for p in pairs] == [("a", "b"), ("a", "c"), ("b", "c")]  # K(K-1)/2 = 3
    rows, ambiguous = unpaired_rows(pairs)
    # a is always chosen, c always rejected; b is chosen once and rejected once: no single label
    assert rows == [("q", "a", True), ("q", "c", False)]
    assert ambiguous == 1


def test_the_same_answer_for_another_prompt_is_another_row() -> None:
    rows, _ = unpaired_rows([PreferencePair("q1", "ok", "bad"), PreferencePair("q2", "bad", "ok")])
    assert ("q1", "ok", True) in rows and ("q2", "ok", False) in rows


def test_trl_rows_are_conversational_with_chat_and_plain_without() -> None:
    pairs = [PreferencePair("q", "kind", "rude")]
    chat = kto_rows(pairs, chat=True)
    assert chat[0] == {
        "prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "assistant", "content": "kind"}], "label": True,
    }  # fmt: skip
    assert kto_rows(pairs, chat=False)[1] == {"prompt": "q", "completion": "rude", "label": False}
