"""Preference pairs for DPO: read, checked, split, shaped for trl, and scored by the implicit reward.

A pairs file is JSONL in trl's standard preference format, one object per line::

    {"prompt": "How do I boil an egg?", "chosen": "Put it in cold water, ...", "rejected": "Figure it out."}

Other fields (a principle, a judge's confidence) ride along and are ignored. Every problem -- a line
that is not JSON, a missing or empty field, a chosen answer equal to the rejected one -- is one
sentence naming the line.

Scoring follows the DPO paper (Rafailov et al. 2023, arXiv:2305.18290, eq. 5): the policy π defines
an implicit reward relative to the reference π_ref,

    r(x, y) = β · (log π(y | x) − log π_ref(y | x))

and a pair counts as ranked correctly when r(x, y_chosen) > r(x, y_rejected); the margin is
r(x, y_chosen) − r(x, y_rejected). Before training π = π_ref, so every reward is 0: a tie, counted
as half right (accuracy 0.5, margin 0), the chance level. The model's own preference -- does it give
the chosen answer a higher log-likelihood, log π(y_c | x) > log π(y_r | x)? -- is reported beside it,
since it is meaningful before training too. Log-likelihoods are genlab's multiple-choice scorer's
(float64 sums, batch-size independent) over the answer followed by the end-of-sequence token, after
the prompt as the model reads it (the chat template's user turn when ``chat`` is on).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab.atomic import atomic_write_text
from genlab.errors import GenlabError, InvalidValueError
from genlab.models.load import LoadedModel

PAIR_FIELDS = ("prompt", "chosen", "rejected")


class PairsError(GenlabError):
    """A preference-pairs file that cannot be used."""


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str
    extra: tuple[tuple[str, Any], ...] = ()  # other fields of the row (principle, confidence, ...)

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected, **dict(self.extra)}


def read_pairs(path: str | Path, *, limit: int | None = None) -> list[PreferencePair]:
    """The pairs in a JSONL file (the first ``limit`` rows when given)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise PairsError(f"no such pairs file: {path}.")
    pairs: list[PreferencePair] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise PairsError(f"pairs file {path} is not UTF-8 text.") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if limit is not None and len(pairs) >= limit:
            break
        pairs.append(_parse_pair(line, f"{path} line {number}"))
    if not pairs:
        raise PairsError(f"pairs file {path} holds no pairs.")
    return pairs


def _parse_pair(line: str, where: str) -> PreferencePair:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise PairsError(f"{where} is not valid JSON ({error.msg}).") from None
    if not isinstance(row, dict):
        raise PairsError(f"{where} must be a JSON object with prompt, chosen and rejected.")
    for name in PAIR_FIELDS:
        value = row.get(name)
        if name not in row:
            raise PairsError(f"{where} has no {name!r} field (it has: {', '.join(sorted(row)) or 'none'}).")
        if not isinstance(value, str) or not value.strip():
            raise PairsError(
                f"{where} has an empty or non-text {name!r}: every pair needs text for {', '.join(PAIR_FIELDS)}."
            )
    if row["chosen"].strip() == row["rejected"].strip():
        raise PairsError(f"{where} has the same text as chosen and rejected, which teaches no preference.")
    extra = tuple((k, v) for k, v in row.items() if k not in PAIR_FIELDS)
    return PreferencePair(row["prompt"], row["chosen"], row["rejected"], extra)


def write_pairs(path: str | Path, pairs: Sequence[PreferencePair]) -> Path:
    """Write pairs as JSONL, atomically."""
    text = "".join(json.dumps(pair.to_dict(), ensure_ascii=False) + "\n" for pair in pairs)
    return atomic_write_text(path, text)


def split_pairs(
    pairs: Sequence[PreferencePair], validation_size: float, seed: int
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """(train, held out): a fraction (< 1) or a count of pairs held out, chosen by a seeded shuffle; 0 holds none."""
    total = len(pairs)
    held = round(validation_size * total) if validation_size < 1 else int(validation_size)
    if validation_size > 0:
        held = max(held, 1)
    if held >= total:
        raise InvalidValueError(
            f"data.validation_size={validation_size!r} is not allowed: it holds out {held} of {total} pairs "
            "and leaves none to train on."
        )
    order = list(range(total))
    random.Random(seed).shuffle(order)
    held_rows = set(order[:held])
    train = [pair for i, pair in enumerate(pairs) if i not in held_rows]
    return train, [pair for i, pair in enumerate(pairs) if i in held_rows]


# --- how the model reads a pair -------------------------------------------------------------------


def uses_chat(loaded: LoadedModel, chat: bool) -> bool:
    return chat and bool(getattr(loaded.tokenizer, "chat_template", None))


def trl_rows(pairs: Sequence[PreferencePair], *, chat: bool) -> list[dict[str, Any]]:
    """Rows for trl's DPOTrainer: conversational (trl applies the chat template) or plain text."""
    if chat:
        return [
            {
                "prompt": [{"role": "user", "content": p.prompt}],
                "chosen": [{"role": "assistant", "content": p.chosen}],
                "rejected": [{"role": "assistant", "content": p.rejected}],
            }
            for p in pairs
        ]
    return [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]


def prompt_text(loaded: LoadedModel, prompt: str, *, chat: bool) -> str:
    if chat:
        return loaded.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    return prompt


def answer_text(loaded: LoadedModel, answer: str) -> str:
    return answer + (loaded.tokenizer.eos_token or "")


def pair_length(loaded: LoadedModel, pair: PreferencePair, *, chat: bool) -> int:
    """Tokens of the prompt and the longer answer, as the model reads them."""
    tokenizer = loaded.tokenizer
    prompt = len(tokenizer(prompt_text(loaded, pair.prompt, chat=chat), add_special_tokens=not chat)["input_ids"])
    answers = [
        len(tokenizer(answer_text(loaded, answer), add_special_tokens=False)["input_ids"])
        for answer in (pair.chosen, pair.rejected)
    ]
    return prompt + max(answers)


def fitting_pairs(
    loaded: LoadedModel, pairs: Sequence[PreferencePair], max_length: int, *, chat: bool
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """(kept, dropped): pairs longer than ``max_length`` tokens are dropped whole, never cut."""
    kept, dropped = [], []
    for pair in pairs:
        (kept if pair_length(loaded, pair, chat=chat) <= max_length else dropped).append(pair)
    return kept, dropped


def fit_and_split(
    loaded: LoadedModel, pairs: Sequence[PreferencePair], data: Any, *, method: str
) -> tuple[bool, list[PreferencePair], list[PreferencePair], list[PreferencePair]]:
    """(chat, dropped, train, held out) for a preference method's recipe ``data`` section (DPO, KTO, ORPO).

    Refuses an encoder-decoder model and a set where fewer than 2 pairs fit ``data.max_length``, in one
    sentence naming ``method``.
    """
    if loaded.is_encoder_decoder:
        raise GenlabError(f"{method} in genlab trains decoder-only models, and {loaded.name!r} is an encoder-decoder model.")
    chat = uses_chat(loaded, data.chat)
    kept, dropped = fitting_pairs(loaded, pairs, data.max_length, chat=chat)
    if len(kept) < 2:
        raise GenlabError(
            f"only {len(kept)} of {len(pairs)} pairs fit data.max_length={data.max_length} tokens: "
            f"{method} needs at least 2 (raise max_length or shorten the pairs)."
        )
    train, held_out = split_pairs(kept, data.validation_size, data.split_seed)
    return chat, dropped, train, held_out


# --- scoring --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairLogProbs:
    """log π(y_chosen | x) and log π(y_rejected | x) for each pair, in order."""

    chosen: tuple[float, ...]
    rejected: tuple[float, ...]


def pair_logprobs(
    loaded: LoadedModel, pairs: Sequence[PreferencePair], *, chat: bool, batch_size: int = 8
) -> PairLogProbs:
    from genlab.evaluation.benchmarks.multiple_choice import loglikelihoods

    requests = []
    for pair in pairs:
        context = prompt_text(loaded, pair.prompt, chat=chat)
        requests += [(context, answer_text(loaded, pair.chosen)), (context, answer_text(loaded, pair.rejected))]
    scores = loglikelihoods(loaded, requests, batch_size=batch_size)
    return PairLogProbs(tuple(scores[0::2]), tuple(scores[1::2]))


def preference_metrics(policy: PairLogProbs, reference: PairLogProbs, beta: float) -> dict[str, float]:
    """Implicit-reward accuracy and margin, and the policy's own log-likelihood preference (module docstring)."""
    n = len(policy.chosen)
    if n == 0:
        return {}
    margins, ll_margins, right, ll_right = [], [], 0.0, 0.0
    for i in range(n):
        reward_chosen = beta * (policy.chosen[i] - reference.chosen[i])
        reward_rejected = beta * (policy.rejected[i] - reference.rejected[i])
        margin = reward_chosen - reward_rejected
        margins.append(margin)
        right += 1.0 if margin > 0 else 0.5 if margin == 0 else 0.0
        ll_margin = policy.chosen[i] - policy.rejected[i]
        ll_margins.append(ll_margin)
        ll_right += 1.0 if ll_margin > 0 else 0.5 if ll_margin == 0 else 0.0
    return {
        "reward_accuracy": right / n,
        "reward_margin": math.fsum(margins) / n,
        "loglik_accuracy": ll_right / n,
        "loglik_margin": math.fsum(ll_margins) / n,
    }
