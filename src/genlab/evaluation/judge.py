"""Pairwise judging, shared by `genlab eval judge`, the constitutional AI judge (RLAIF) and human ranking.

A judge is shown an input and two answers, (A) and (B), and says which is better, or that they tie.
Judges favour a position whatever the content (Zheng et al. 2023, "Judging LLM-as-a-Judge with
MT-Bench and Chatbot Arena", §3.3: position bias), so every pair is asked in both orders::

    P(first ≻ second) = ½ · [ p(A | first shown as A) + p(B | first shown as B) ]

and an order's verdict is "first", "second" or "tie" (within ``tie_margin`` of ½). The pair's outcome
is a win only when both orders agree on it; orders that disagree count as a tie (as MT-Bench
counts inconsistent verdicts), and the share of pairs whose two orders agree, the order-agreement
rate, says how far the judge can be trusted: a judge that flips with the order is not judging the
answers. A win rate counts a tie as half a win.

Three kinds of judge answer ``p(A)`` for one shown pair:

- a local model (:func:`local_judge`): the log-likelihoods of the next token being "A" or "B" after
  ``The answer is: (``, softmaxed over the two letters (Bai et al. 2022, arXiv:2212.08073, §4.1, as
  genlab's RLAIF does), with genlab's multiple-choice scorer;
- an OpenAI-compatible provider (:func:`provider_judge`): its reply's first verdict letter, 1, 0 or
  ½ for a tie (or an unreadable reply);
- a person (:func:`human_judge`): ``a``, ``b`` or ``=`` typed in the terminal.

Written here because no maintained library does the both-orders bookkeeping around a local model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from genlab.evaluation.benchmarks.multiple_choice import score_choices
from genlab.models.load import LoadedModel
from genlab.prompting.chat import format_chat

ANSWER_PREFIX = "The answer is: ("
LETTERS = ("A", "B")
TIE_MARGIN = 0.05  # an order whose p(A) is within this of 1/2 is a tie
Outcome = Literal["first", "second", "tie"]
Shown = tuple[Any, str, str]  # (input, answer shown as A, answer shown as B); the input is the question's to read
AskFn = Callable[[Sequence[Shown]], list[float]]  # p(A is better) for each shown pair


@dataclass(frozen=True)
class Judgement:
    prob_first: float  # P(first answer ≻ second), averaged over the orders asked
    by_order: tuple[float, ...]  # P(first ≻ second) from each order asked: (shown first as A, shown first as B)

    @property
    def confidence(self) -> float:
        return max(self.prob_first, 1.0 - self.prob_first)

    @property
    def orders_agree(self) -> bool:
        """Both orders prefer the same answer (always True when one order was asked)."""
        return len({p > 0.5 for p in self.by_order}) == 1

    def outcome(self, tie_margin: float = TIE_MARGIN) -> Outcome:
        """The pair's verdict: every order must agree on it, otherwise (or within the margin) a tie."""
        verdicts = {_verdict(p, tie_margin) for p in self.by_order}
        return verdicts.pop() if len(verdicts) == 1 else "tie"

    def outcomes_agree(self, tie_margin: float = TIE_MARGIN) -> bool:
        """The orders give the same verdict, ties included."""
        return len({_verdict(p, tie_margin) for p in self.by_order}) == 1


def _verdict(prob_first: float, tie_margin: float) -> Outcome:
    if abs(prob_first - 0.5) <= tie_margin:
        return "tie"
    return "first" if prob_first > 0.5 else "second"


def judge_both_orders(ask: AskFn, items: Sequence[Shown], *, both_orders: bool = True) -> list[Judgement]:
    """For each (input, first, second): ask the judge in one or both orders and combine as above.

    The input is passed to the judge's question as it is (text, or e.g. a prompt with a principle for RLAIF).
    """
    shown: list[Shown] = []
    for text, first, second in items:
        shown.append((text, first, second))
        if both_orders:
            shown.append((text, second, first))
    probs = ask(shown) if shown else []
    per_item = 2 if both_orders else 1
    judgements = []
    for i in range(len(items)):
        first_as_a = probs[i * per_item]
        orders = (first_as_a, 1.0 - probs[i * per_item + 1]) if both_orders else (first_as_a,)
        judgements.append(Judgement(sum(orders) / len(orders), orders))
    return judgements


# --- the judges ---------------------------------------------------------------------------------


def judge_context(loaded: LoadedModel, question: str, *, chat: bool) -> str:
    """The question as the model reads it, up to where the letter comes."""
    if chat:
        return format_chat(loaded.tokenizer, [{"role": "user", "content": question}]) + ANSWER_PREFIX
    return f"Human: {question}\n\nAssistant: {ANSWER_PREFIX}"


def comparison_question(text: str, first: str, second: str, instruction: str) -> str:
    """The pairwise question: the input, the instruction, the two answers, and how to reply."""
    return f"{text}\n\n{instruction}\n\n(A) {first}\n\n(B) {second}\n\nReply with the letter of the better reply, A or B."


def local_judge(
    loaded: LoadedModel, question: Callable[[Any, str, str], str], *, chat: bool, batch_size: int = 8
) -> AskFn:
    """p(A) from a local model's log-likelihoods of the letters A and B after the question."""

    def ask(shown: Sequence[Shown]) -> list[float]:
        contexts = [judge_context(loaded, question(text, a, b), chat=chat) for text, a, b in shown]
        scores = score_choices(loaded, contexts, [LETTERS] * len(contexts), choice_prefix="", batch_size=batch_size)
        return [s.probabilities[0] for s in scores]

    return ask


_LETTER = re.compile(r"\(?\b([AB])\b\)?")


def read_verdict(reply: str) -> float:
    """A reply's verdict as p(A): 1 for A, 0 for B, ½ for a tie or a reply that names neither."""
    if re.search(r"\btie\b|\bequal|=", reply, re.IGNORECASE):
        return 0.5
    match = _LETTER.search(reply.upper())
    return 0.5 if match is None else (1.0 if match.group(1) == "A" else 0.0)


def provider_judge(complete: Callable[[str], str], question: Callable[[str, str, str], str]) -> AskFn:
    """p(A) read from the text reply of any completion function (an OpenAI-compatible provider's)."""

    def ask(shown: Sequence[Shown]) -> list[float]:
        suffix = " If they are equally good, reply: tie."
        return [read_verdict(complete(question(text, a, b) + suffix)) for text, a, b in shown]

    return ask


HUMAN_ANSWERS = {"a": 1.0, "b": 0.0, "=": 0.5, "tie": 0.5}


def human_judge(ask_line: Callable[[str], str], show: Callable[[str], None]) -> AskFn:
    """p(A) from a person: each pair is shown and ``a``, ``b`` or ``=`` (a tie) is asked until given."""

    def ask(shown: Sequence[Shown]) -> list[float]:
        answers = []
        for number, (text, a, b) in enumerate(shown, start=1):
            show(f"\n[{number}/{len(shown)}] {text}\n  (A) {a}\n  (B) {b}")
            while (reply := ask_line("better answer (a, b, or = for a tie): ").strip().lower()) not in HUMAN_ANSWERS:
                show(f"`{reply}` is not a, b or =.")
            answers.append(HUMAN_ANSWERS[reply])
        return answers

    return ask


def judgements_from_ranking(ranks: Sequence[int | None]) -> list[tuple[int, int, Judgement]]:
    """A person's ranking (1 best, equal ranks tie, None unranked) as the pairwise judgements it implies.

    For completions i < j that are both ranked: ``Judgement(p)`` with p = P(i ≻ j) = 1, 0 or ½ (a tie),
    the same verdicts a model or provider judge gives, so human feedback is counted the same way.
    """
    ranked = [(i, rank) for i, rank in enumerate(ranks) if rank is not None]
    pairs = []
    for n, (i, rank_i) in enumerate(ranked):
        for j, rank_j in ranked[n + 1 :]:
            p = 0.5 if rank_i == rank_j else (1.0 if rank_i < rank_j else 0.0)
            pairs.append((i, j, Judgement(p, (p,))))
    return pairs


# --- the tally ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    wins: int  # pairs where the second run's answer wins (both orders agree)
    losses: int
    ties: int
    order_agreement: float  # share of pairs whose orders gave the same verdict
    per_row: tuple[float, ...]  # 1 win, ½ tie, 0 loss: what the win rate averages (and is resampled)

    @property
    def win_rate(self) -> float:
        return sum(self.per_row) / len(self.per_row) if self.per_row else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"wins": self.wins, "losses": self.losses, "ties": self.ties, "win_rate": self.win_rate,
                "order_agreement": self.order_agreement}  # fmt: skip


def tally(judgements: Sequence[Judgement], *, tie_margin: float = TIE_MARGIN) -> Tally:
    """Wins of the *second* answer of each pair over the first (the challenger over the baseline)."""
    outcomes = [j.outcome(tie_margin) for j in judgements]
    per_row = tuple({"second": 1.0, "tie": 0.5, "first": 0.0}[o] for o in outcomes)
    agree = sum(j.outcomes_agree(tie_margin) for j in judgements)
    return Tally(
        wins=outcomes.count("second"), losses=outcomes.count("first"), ties=outcomes.count("tie"),
        order_agreement=agree / len(judgements) if judgements else float("nan"), per_row=per_row,
    )  # fmt: skip
