"""Pairwise judging: both orders asked and combined, ties, order agreement, win rate with its interval;
`genlab eval judge` end to end on a tiny model; RLAIF's judge is the same code."""

import json
from pathlib import Path

import pytest

from genlab.apps.providers import ScriptedProvider
from genlab.errors import GenlabError
from genlab.evaluation.judge import (
    Judgement,
    comparison_question,
    judge_both_orders,
    local_judge,
    provider_judge,
    read_verdict,
    tally,
)  # fmt: skip
from genlab.evaluation.judge_run import DEFAULT_INSTRUCTION, judge_runs
from genlab.evaluation.run import evaluate
from genlab.generation import GenerationSettings
from genlab.models.load import load_model
from genlab.models.tiny import save_tiny_model


def question(text: str, first: str, second: str) -> str:
    return comparison_question(text, first, second, "Which is better?")


def test_both_orders_are_asked_and_combined() -> None:
    asked = []

    def always_a(shown):  # a judge with pure position bias: it always says A
        asked.extend(shown)
        return [1.0] * len(shown)

    (verdict,) = judge_both_orders(always_a, [("x", "one", "two")])
    assert asked == [("x", "one", "two"), ("x", "two", "one")]
    assert verdict.by_order == (1.0, 0.0) and verdict.prob_first == 0.5
    assert verdict.outcome() == "tie" and not verdict.outcomes_agree()  # it flips with the order: no win


def test_tally_counts_wins_of_the_second_run_ties_half() -> None:
    judgements = [Judgement(0.1, (0.1, 0.1)), Judgement(0.9, (0.9, 0.9)), Judgement(0.5, (0.9, 0.1)), Judgement(0.2, (0.2, 0.2))]
    counts = tally(judgements)
    assert (counts.wins, counts.losses, counts.ties) == (2, 1, 1)
    assert counts.win_rate == pytest.approx((1 + 0 + 0.5 + 1) / 4)
    assert counts.order_agreement == pytest.approx(3 / 4)


def test_provider_replies_are_read_in_both_orders() -> None:
    assert [read_verdict(r) for r in ("(A)", "B is better", "It's a tie.", "no idea")] == [1.0, 0.0, 0.5, 0.5]
    provider = ScriptedProvider(["B", "A"])  # consistent: prefers "two" in both orders
    ask = provider_judge(lambda prompt: provider.complete(prompt), question)
    (verdict,) = judge_both_orders(ask, [("x", "one", "two")])
    assert verdict.outcome() == "second" and verdict.outcomes_agree()
    assert "(A) one" in provider.prompts[0] and "(A) two" in provider.prompts[1]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(save_tiny_model(tmp_path_factory.mktemp("tiny") / "causal", seed=2))


def test_judge_runs_end_to_end_on_a_tiny_model(tiny_folder: str, tmp_path: Path) -> None:
    rows = [{"dialogue": f"#Person1#: Where is parcel {i}?", "summary": f"Parcel {i} is late."} for i in range(4)]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_model(tiny_folder)
    short, longer = GenerationSettings(max_new_tokens=3), GenerationSettings(max_new_tokens=6)
    run_a = evaluate(loaded, str(data), settings=short).run_id
    run_b = evaluate(loaded, str(data), settings=longer).run_id
    result = judge_runs(run_a, run_b, judge=tiny_folder)
    assert result.n == 4 and result.metrics["wins"] + result.metrics["losses"] + result.metrics["ties"] == 4
    assert 0.0 <= result.metrics["order_agreement"] <= 1.0
    low, high = result.intervals["win_rate"]
    assert 0.0 <= low <= result.metrics["win_rate"] <= high <= 1.0
    verdicts = [json.loads(line) for line in Path(result.judgements).read_text().splitlines()]
    assert len(verdicts) == 4 and all(len(v["by_order"]) == 2 for v in verdicts)
    # Each stored verdict is what the local judge says when asked again (both orders).
    ask = local_judge(loaded, lambda t, a, b: comparison_question(t, a, b, DEFAULT_INSTRUCTION), chat=True)
    again = judge_both_orders(ask, [(v["input"], v["baseline"], v["challenger"]) for v in verdicts])
    assert [p for j in again for p in j.by_order] == pytest.approx([p for v in verdicts for p in v["by_order"]])
    fewer = evaluate(loaded, str(data), settings=short, limit=2).run_id
    with pytest.raises(GenlabError, match="different rows"):
        judge_runs(run_a, fewer, judge=tiny_folder)



def test_rlaif_judges_with_the_same_code() -> None:
    from genlab.alignment import rlaif
    from genlab.evaluation import judge

    assert rlaif.Judgement is judge.Judgement and rlaif.judge_context is judge.judge_context


def test_human_rankings_are_counted_as_the_same_pairwise_judgements(tmp_path: Path) -> None:
    from genlab.alignment.feedback_collect import rank_prompts
    from genlab.evaluation.judge import judgements_from_ranking

    verdicts = [(i, j, v.outcome()) for i, j, v in judgements_from_ranking([2, 1, None, 1])]
    assert verdicts == [(0, 1, "second"), (0, 3, "second"), (1, 3, "tie")]
    answers = iter(["2=1 3"])  # completions 1 and 2 tie, both above 3: three pairs, one tie
    tally = rank_prompts(["p"], lambda i, p: ["x", "y", "z"], tmp_path / "ranks.jsonl", ask=lambda _: next(answers), show=lambda _: None)
    assert (tally.ranked, tally.pairs, tally.ties) == (1, 3, 1)
