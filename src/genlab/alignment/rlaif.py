"""AI feedback (RLAIF; Bai et al. 2022, arXiv:2212.08073, §4): the model labels which answer follows a principle.

For each prompt x the model samples two answers y₁, y₂; then the model itself is asked a
multiple-choice question built from a principle's ``comparison``::

    Consider this request to an assistant: x
    <comparison question>
    (A) y₁
    (B) y₂
    Reply with the letter of the better reply.
    ⟶ assistant: "The answer is: ("

and the label is read from the log-likelihoods of the next token being "A" or "B", as the paper
does (it normalises the probabilities of "(A)" and "(B)" into soft preference labels). A tiny model
rarely writes a parsable verdict, but it always assigns the two letters a probability, so
log-likelihood scoring always yields a label and a confidence; it is genlab's multiple-choice scorer
(:mod:`genlab.evaluation.benchmarks.multiple_choice`).

Language models favour one position whatever the content. To cancel that, the question is also asked
with the answers swapped, and the two probabilities are averaged:

    P(y₁ ≻ y₂) = ½ · [ softmax(LL_A, LL_B)_A  (y₁ shown as A)  +  softmax(LL_A, LL_B)_B  (y₁ shown as B) ]

so swapping y₁ and y₂ gives exactly 1 − P(y₁ ≻ y₂): the label no longer depends on the order the
answers were sampled in. The chosen answer is the one with P > ½ and the pair's confidence is
max(P, 1 − P) ∈ [½, 1]. Pairs below ``min_confidence``, exact ties, and pairs of identical or empty
answers are skipped.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from genlab.alignment.constitution import Constitution, Principle
from genlab.alignment.critique_revision import generate_replies
from genlab.alignment.dpo_data import PreferencePair
from genlab.evaluation.judge import (
    LETTERS,
    Judgement,
    judge_both_orders,
    judge_context,
    local_judge,
)
from genlab.generation.engine import GenerationEngine
from genlab.generation.settings import GenerationSettings
from genlab.models.load import LoadedModel

__all__ = ["LETTERS", "FeedbackOutcome", "Judgement", "ai_preference_pairs", "judge", "judge_context", "judge_question"]


def judge_question(prompt: str, first: str, second: str, principle: Principle) -> str:
    return (
        f"Consider this request to an assistant:\n{prompt}\n\n{principle.comparison}\n\n"
        f"(A) {first}\n\n(B) {second}\n\nReply with the letter of the better reply, A or B."
    )


def judge(
    loaded: LoadedModel,
    items: Sequence[tuple[str, str, str, Principle]],
    *,
    chat: bool,
    both_orders: bool = True,
    batch_size: int = 8,
) -> list[Judgement]:
    """For each (prompt, first, second, principle): how likely the model finds ``first`` the better answer.

    The pairwise judging (letters' log-likelihoods, both orders) is genlab.evaluation.judge's, shared
    with `genlab eval judge` and human ranking.
    """
    ask = local_judge(loaded, lambda key, a, b: judge_question(key[0], a, b, key[1]), chat=chat, batch_size=batch_size)
    return judge_both_orders(ask, [((p, principle), a, b) for p, a, b, principle in items], both_orders=both_orders)


@dataclass
class FeedbackOutcome:
    pairs: list[PreferencePair]  # {prompt, chosen, rejected, principle, confidence}
    judged: int  # prompts whose two answers were compared
    skipped_same: int  # prompts whose two sampled answers were identical or empty: nothing to compare
    skipped_low_confidence: int  # comparisons under min_confidence (or exact ties)
    mean_confidence: float  # over every comparison made
    orders_agree: float  # share of comparisons where both orders preferred the same answer


def ai_preference_pairs(
    engine: GenerationEngine,
    prompts: Sequence[str],
    constitution: Constitution,
    settings: GenerationSettings,
    *,
    chat: bool,
    seed: int = 0,
    both_orders: bool = True,
    min_confidence: float = 0.5,
    progress: bool = True,
) -> FeedbackOutcome:
    """Sample two answers per prompt, let the model judge them against a random principle, keep the pairs."""
    loaded = engine.loaded
    rng = random.Random(seed)
    principles = [constitution.sample(rng) for _ in prompts]
    talks = [[{"role": "user", "content": prompt}] for prompt in prompts]
    two = settings.with_overrides(num_return_sequences=2)
    sampled = generate_replies(engine, talks, two, chat=chat, label="answer pairs", progress=progress)
    items, skipped_same = [], 0
    for prompt, answers, principle in zip(prompts, sampled, principles, strict=True):
        first, second = answers
        if not first or not second or first == second:
            skipped_same += 1
            continue
        items.append((prompt, first, second, principle))
    judgements = judge(loaded, items, chat=chat, both_orders=both_orders, batch_size=engine.batch_size) if items else []
    pairs, low = [], 0
    for (prompt, first, second, principle), verdict in zip(items, judgements, strict=True):
        if verdict.prob_first == 0.5 or verdict.confidence < min_confidence:
            low += 1
            continue
        chosen, rejected = (first, second) if verdict.prob_first > 0.5 else (second, first)
        extra = (("principle", principle.name), ("confidence", round(verdict.confidence, 6)))
        pairs.append(PreferencePair(prompt, chosen, rejected, extra))
    count = len(judgements)
    return FeedbackOutcome(
        pairs=pairs,
        judged=count,
        skipped_same=skipped_same,
        skipped_low_confidence=low,
        mean_confidence=sum(j.confidence for j in judgements) / count if count else float("nan"),
        orders_agree=sum(j.orders_agree for j in judgements) / count if count else float("nan"),
    )
