"""Human feedback: rankings → preference pairs, the rankings format's checks, and interactive ranking."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from genlab.alignment.feedback import Ranking, RankingsError, import_rankings, rankings_to_pairs, read_rankings
from genlab.alignment.feedback_collect import AnswerError, collect_rankings, parse_answer, rank_prompts, read_prompts
from genlab.errors import GenlabError, InvalidValueError
from genlab.lineage import LineageStore

EXAMPLE = Path(__file__).resolve().parents[2] / "recipes" / "data" / "example-rankings.jsonl"


def ranking(ranks: list[int | None], completions: list[str] | None = None) -> Ranking:
    completions = completions or [f"answer {chr(ord('a') + i)}" for i in range(len(ranks))]
    return Ranking("a prompt", tuple(completions), tuple(ranks))


def as_tuples(rows: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(row["chosen"], row["rejected"]) for row in rows]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


GOOD = json.dumps({"prompt": "p", "completions": ["x", "y"], "ranks": [2, 1]})

# --- rankings → pairs -------------------------------------------------------------------------


def test_three_ranked_answers_give_three_pairs_best_first() -> None:
    # ranks [2, 1, 3]: b is best, then a, then c → b>a, b>c, a>c (1>2, 1>3, 2>3 as in the course notes).
    pairs = rankings_to_pairs([ranking([2, 1, 3], ["a", "b", "c"])])
    assert as_tuples(pairs.rows) == [("b", "a"), ("b", "c"), ("a", "c")]
    assert all(row["prompt"] == "a prompt" and set(row) == {"prompt", "chosen", "rejected"} for row in pairs.rows)
    assert (pairs.prompts, pairs.ties_skipped, pairs.unranked_skipped) == (1, 0, 0)


def test_only_the_order_of_ranks_matters() -> None:
    dense = rankings_to_pairs([ranking([1, 2, 2, 3])])
    gapped = rankings_to_pairs([ranking([1, 3, 3, 7])])
    assert dense.rows == gapped.rows and dense.ties_skipped == gapped.ties_skipped == 1


def test_tied_completions_give_no_pair_with_each_other() -> None:
    pairs = rankings_to_pairs([ranking([1, 1, 3], ["a", "b", "c"])])
    assert as_tuples(pairs.rows) == [("a", "c"), ("b", "c")]
    assert pairs.ties_skipped == 1
    all_tied = rankings_to_pairs([ranking([2, 2, 2])])
    assert all_tied.rows == [] and all_tied.ties_skipped == 3


def test_unranked_completions_give_no_pairs() -> None:
    pairs = rankings_to_pairs([ranking([1, None, 2], ["a", "b", "c"])])
    assert as_tuples(pairs.rows) == [("a", "c")]
    assert pairs.unranked_skipped == 2  # b-a and b-c
    # 4 completions, 2 unranked: 1 pair between the ranked, 1 between the unranked, 4 across → 5 skipped.
    four = rankings_to_pairs([ranking([None, 2, None, 1], ["a", "b", "c", "d"])])
    assert as_tuples(four.rows) == [("d", "b")] and four.unranked_skipped == 5


def test_every_two_completions_are_counted_once() -> None:
    rankings = [ranking([1, 1, 3, None]), ranking([3, 2, 1]), ranking([None, None]), ranking([1, 2, 2, 2, 5])]
    pairs = rankings_to_pairs(rankings)
    expected = sum(len(r.ranks) * (len(r.ranks) - 1) // 2 for r in rankings)
    assert len(pairs.rows) + pairs.ties_skipped + pairs.unranked_skipped == expected
    assert pairs.prompts == 4


# --- reading rankings: malformed lines ----------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('{"prompt": "p", "completions": ["x", "y"], "ranks": [1, 2]', "is not valid JSON"),
        ('["p", ["x", "y"], [1, 2]]', "is not a JSON object"),
        ('{"completions": ["x", "y"], "ranks": [1, 2]}', 'has no "prompt" field'),
        ('{"prompt": "p", "ranks": [1, 2]}', 'has no "completions" field'),
        ('{"prompt": "p", "completions": ["x", "y"]}', 'has no "ranks" field'),
        ('{"prompt": "", "completions": ["x", "y"], "ranks": [1, 2]}', '"prompt" that is not a non-empty string'),
        ('{"prompt": "p", "completions": ["x", 3], "ranks": [1, 2]}', "not a list of strings"),
        ('{"prompt": "p", "completions": ["x"], "ranks": [1]}', "ranking needs at least 2"),
        ('{"prompt": "p", "completions": ["x", "y", "z"], "ranks": [1, 2]}', "has 3 completions but 2 ranks"),
        ('{"prompt": "p", "completions": ["x", "y"], "ranks": "1 2"}', '"ranks" field that is not a list'),
        ('{"prompt": "p", "completions": ["x", "y"], "ranks": [1, 0]}', "completion 2 the rank 0"),
        ('{"prompt": "p", "completions": ["x", "y"], "ranks": [-1, 1]}', "completion 1 the rank -1"),
        ('{"prompt": "p", "completions": ["x", "y"], "ranks": [1, 1.5]}', "completion 2 the rank 1.5"),
        ('{"prompt": "p", "completions": ["x", "y"], "ranks": [true, 2]}', "completion 1 the rank true"),
        ('{"prompt": "p", "completions": ["x", "y"], "ranks": ["1", 2]}', 'completion 1 the rank "1"'),
        ('{"prompt": "p", "completions": ["x", "y", "x"], "ranks": [1, 2, 3]}', "identical completions 1 and 3"),
    ],
)
def test_a_malformed_line_is_named_in_one_sentence(tmp_path: Path, line: str, words: str) -> None:
    # Line 3, after a good line and a blank one: the number counts the file's lines as an editor does.
    path = write_lines(tmp_path / "rankings.jsonl", [GOOD, "", line, GOOD])
    with pytest.raises(RankingsError) as caught:
        read_rankings(path)
    message = str(caught.value)
    assert message.startswith(f"{path} line 3 ") and words in message
    assert "\n" not in message and message.endswith("nothing was written.")


def test_missing_and_empty_rankings_files_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(GenlabError, match="no such rankings file"):
        read_rankings(tmp_path / "absent.jsonl")
    with pytest.raises(GenlabError, match="holds no rankings"):
        read_rankings(write_lines(tmp_path / "blank.jsonl", ["", "  "]))


def test_the_example_rankings_file_is_valid_and_counts_as_written() -> None:
    rankings = read_rankings(EXAMPLE)
    assert len(rankings) == 7 and all(len(r.completions) == 3 for r in rankings)
    pairs = rankings_to_pairs(rankings)
    # Counted by hand: five full rankings (3 pairs each), one tie [1, 1, 3] (2 pairs, 1 tie), one
    # incomplete [1, null, 2] (1 pair, 2 pairs with the unranked one).
    assert (len(pairs.rows), pairs.ties_skipped, pairs.unranked_skipped) == (18, 1, 2)


# --- import: atomic output and lineage -----------------------------------------------------------


def test_import_writes_pairs_and_records_the_run(tmp_path: Path) -> None:
    rankings = write_lines(
        tmp_path / "rankings.jsonl",
        [
            json.dumps({"prompt": "p1", "completions": ["a", "b", "c"], "ranks": [3, 1, 2]}),
            json.dumps({"prompt": "p2", "completions": ["d", "e", "f"], "ranks": [1, 1, None]}),
        ],
    )
    output = tmp_path / "out" / "pairs.jsonl"
    result = import_rankings(rankings, output)
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in rows] == [("p1", "b", "c"), ("p1", "b", "a"), ("p1", "c", "a")]
    assert result.to_dict() == {
        "run_id": result.run_id, "output": str(output), "prompts": 2, "pairs": 3, "ties_skipped": 1,
        "unranked_skipped": 2,
    }  # fmt: skip
    assert [p.name for p in output.parent.iterdir()] == ["pairs.jsonl"]  # no temporary file left behind

    with LineageStore() as store:
        run = store.get_run(result.run_id)
        inputs, outputs = store.artifacts_of(run.id, "input"), store.artifacts_of(run.id, "output")
    assert (run.kind, run.status) == ("feedback", "completed")
    assert [(a.kind, a.path, a.metadata["role"]) for a in inputs] == [("dataset", str(rankings.resolve()), "rankings")]
    (pairs_artifact,) = outputs
    assert (pairs_artifact.kind, pairs_artifact.path) == ("dataset", str(output.resolve()))
    assert {k: pairs_artifact.metadata[k] for k in ("pairs", "prompts", "ties")} == {"pairs": 3, "prompts": 2, "ties": 1}


def test_a_bad_line_fails_the_import_and_leaves_the_old_output_alone(tmp_path: Path) -> None:
    rankings = write_lines(tmp_path / "rankings.jsonl", [GOOD, GOOD.replace("[2, 1]", "[2, 1, 3]")])
    output = write_lines(tmp_path / "pairs.jsonl", ["old contents"])
    with pytest.raises(RankingsError, match="line 2 has 2 completions but 3 ranks"):
        import_rankings(rankings, output)
    assert output.read_text() == "old contents\n"
    with LineageStore() as store:
        assert store.list_runs(kind="feedback") == []  # a file that cannot be read is not a run


def test_import_refuses_to_overwrite_its_input(tmp_path: Path) -> None:
    rankings = write_lines(tmp_path / "rankings.jsonl", [GOOD])
    with pytest.raises(RankingsError, match="is the rankings file itself"):
        import_rankings(rankings, tmp_path / "." / "rankings.jsonl")
    assert rankings.read_text() == GOOD + "\n"


# --- interactive ranking ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ranks"),
    [
        ("2 1 3", [2, 1, 3]),
        ("2=1 3", [1, 1, 3]),
        (" 3 = 2  1 ", [3, 1, 1]),
        ("1, 3, 2", [1, 3, 2]),
        ("3 1", [2, None, 1]),
        ("1=2=3", [1, 1, 1]),
    ],
)
def test_answers_become_competition_ranks(text: str, ranks: list[int | None]) -> None:
    assert parse_answer(text, 3) == ranks


@pytest.mark.parametrize("text", ["4 1 2", "0 1", "1 1 2", "2=2 1", "1", "", "first", "1==2"])
def test_answers_that_are_not_rankings_are_refused(text: str) -> None:
    with pytest.raises(AnswerError):
        parse_answer(text, 3)


def scripted(answers: list[str]) -> tuple[Callable[[str], str], list[str]]:
    """An ``ask`` that replays answers (EOFError when they run out) and a list of what was asked."""
    remaining: Iterator[str] = iter(answers)
    asked: list[str] = []

    def ask(question: str) -> str:
        asked.append(question)
        try:
            return next(remaining)
        except StopIteration:
            raise EOFError from None

    return ask, asked


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_scripted_session_with_a_tie_a_retry_a_skip_and_a_quit(tmp_path: Path) -> None:
    output = tmp_path / "rankings.jsonl"
    lines_on_disk: list[int] = []

    def sample(index: int, prompt: str) -> list[str]:
        # What a crash at this moment would leave: every ranking so far is already on disk.
        lines_on_disk.append(len(read_rows(output)) if output.exists() else 0)
        return [f"{prompt} answer {n}" for n in range(1, 4)]

    ask, asked = scripted(["2=1 3", "7 1", "s", "3 1 2", "q"])
    shown: list[str] = []
    tally = rank_prompts(["p1", "p2", "p3", "p4", "p5"], sample, output, ask=ask, show=shown.append)

    assert read_rows(output) == [
        {"prompt": "p1", "completions": ["p1 answer 1", "p1 answer 2", "p1 answer 3"], "ranks": [1, 1, 3]},
        {"prompt": "p3", "completions": ["p3 answer 1", "p3 answer 2", "p3 answer 3"], "ranks": [2, 3, 1]},
    ]
    assert (tally.ranked, tally.skipped, tally.stopped) == (2, 1, True)
    assert lines_on_disk == [0, 1, 1, 2]  # p5 was never sampled: the person quit at p4
    assert len(asked) == 5  # "7 1" was refused and p2 asked again
    assert "  [2] p1 answer 2" in shown and any("`7` is not a completion number (1 to 3)" in s for s in shown)
    assert read_rankings(output)  # what the session writes, import reads


def test_a_stopped_session_resumes_where_it_left_off(tmp_path: Path) -> None:
    output = tmp_path / "rankings.jsonl"
    sampled: list[str] = []

    def sample(index: int, prompt: str) -> list[str]:
        sampled.append(prompt)
        return ["x", "y"]

    ask, _ = scripted(["1 2"])  # then the input ends: same as q
    first = rank_prompts(["p1", "p2", "p3"], sample, output, ask=ask, show=lambda _: None)
    ask, _ = scripted(["2 1", "1 2"])
    second = rank_prompts(["p1", "p2", "p3"], sample, output, ask=ask, show=lambda _: None)
    assert (first.ranked, first.stopped) == (1, True)
    assert (second.ranked, second.already_ranked, second.stopped) == (2, 1, False)
    assert sampled == ["p1", "p2", "p2", "p3"]
    assert [(r["prompt"], r["ranks"]) for r in read_rows(output)] == [("p1", [1, 2]), ("p2", [2, 1]), ("p3", [1, 2])]


def test_identical_samples_are_shown_once_and_a_single_one_is_skipped(tmp_path: Path) -> None:
    output = tmp_path / "rankings.jsonl"
    samples = {"p1": ["same", "other", "same"], "p2": ["only", "only", "only"]}
    ask, asked = scripted(["2 1"])
    tally = rank_prompts(["p1", "p2"], lambda i, p: samples[p], output, ask=ask, show=lambda _: None)
    assert read_rows(output) == [{"prompt": "p1", "completions": ["same", "other"], "ranks": [2, 1]}]
    assert (tally.ranked, tally.skipped, len(asked)) == (1, 1, 1)


def test_a_line_cut_short_by_a_crash_does_not_swallow_the_next(tmp_path: Path) -> None:
    output = tmp_path / "rankings.jsonl"
    output.write_text('{"prompt": "p0", "comp')  # what a crash in the middle of a write leaves
    ask, _ = scripted(["1 2"])
    rank_prompts(["p1"], lambda i, p: ["x", "y"], output, ask=ask, show=lambda _: None)
    lines = output.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["prompt"] == "p1"
    with pytest.raises(RankingsError, match="line 1 is not valid JSON"):
        read_rankings(output)  # the broken line is reported, not dropped


def test_prompts_from_jsonl_or_plain_text(tmp_path: Path) -> None:
    text = write_lines(tmp_path / "prompts.txt", ["first prompt", "", "second prompt", "first prompt"])
    assert read_prompts(text) == ["first prompt", "second prompt"]
    assert len(read_prompts(EXAMPLE)) == 7  # a rankings file has a "prompt" field too
    bad = write_lines(tmp_path / "prompts.jsonl", ['{"prompt": "a"}', '{"text": "b"}'])
    with pytest.raises(RankingsError, match='line 2 has no "prompt" text'):
        read_prompts(bad)


def test_collect_refuses_greedy_decoding_and_k_below_two(tmp_path: Path) -> None:
    from genlab.generation import GenerationSettings

    prompts = write_lines(tmp_path / "prompts.txt", ["hello"])
    # Both are checked before the model is looked up: the model name here does not exist.
    with pytest.raises(InvalidValueError, match="temperature=0 is not allowed"):
        collect_rankings("no-such-model", prompts, tmp_path / "r.jsonl", settings=GenerationSettings(temperature=0))
    with pytest.raises(InvalidValueError, match="k=1 is not allowed"):
        collect_rankings("no-such-model", prompts, tmp_path / "r.jsonl", k=1)


def test_collect_with_a_tiny_model_samples_k_different_completions(tmp_path: Path) -> None:
    from genlab.generation import GenerationSettings
    from genlab.models.tiny import tiny_model

    prompts = write_lines(tmp_path / "prompts.txt", ["Summarise: the parcel arrived broken.", "Say hello."])
    output = tmp_path / "rankings.jsonl"
    ask, _ = scripted(["3 1=2", "2 3 1"])
    settings = GenerationSettings(temperature=1.0, max_new_tokens=8, seed=11)
    result = collect_rankings(tiny_model("causal", seed=3), prompts, output, k=3, settings=settings, ask=ask, show=lambda _: None)
    rows = read_rows(output)
    assert [r["ranks"] for r in rows] == [[2, 2, 1], [3, 1, 2]]
    assert all(len(set(r["completions"])) == 3 for r in rows)
    assert (result.ranked, result.prompts, result.stopped) == (2, 2, False)
    with LineageStore() as store:
        (artifact,) = store.artifacts_of(result.run_id, "output")
        assert store.get_run(result.run_id).kind == "feedback"
    assert artifact.path == str(output.resolve()) and artifact.metadata["role"] == "rankings"
