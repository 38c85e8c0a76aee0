"""Perturbations for robustness scores (HELM, Liang et al. 2022, "Holistic Evaluation of Language Models").

HELM measures robustness as the score on inputs changed in ways that keep their meaning: typos and
changes of case among them. A benchmark's robustness score for a kind is its accuracy (or metric)
when every question is perturbed that way; the shots and the answer choices are left as they are.

- ``typos``: among the words longer than 3 letters, round(10 %) of them (at least one, when there is
  one) get two adjacent, different letters swapped ("weather" -> "waether").
- ``lowercase`` / ``uppercase``: the whole text in lower / upper case.

Every perturbation is deterministic: the random choices come from a generator seeded with the seed,
the kind and the text itself (Python's ``random.Random`` seeds a string through SHA-512, the same in
every process), so the same question is perturbed the same way in every run and whatever shares
its batch.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from genlab.errors import InvalidValueError

TYPO_RATE = 0.10  # share of the eligible words that get a typo
TYPO_MIN_LENGTH = 4  # words of length > 3
_WORD = re.compile(r"[^\W\d_]+")  # a run of letters, in any script


def _typos(text: str, rng: random.Random) -> str:
    words = [
        match
        for match in _WORD.finditer(text)
        if len(match.group()) >= TYPO_MIN_LENGTH and len(set(match.group())) > 1  # "aaaa" cannot change
    ]
    if not words:
        return text
    count = max(1, round(TYPO_RATE * len(words)))
    chars = list(text)
    for match in sorted(rng.sample(words, count), key=lambda m: m.start()):
        word = match.group()
        swappable = [i for i in range(len(word) - 1) if word[i] != word[i + 1]]
        at = match.start() + rng.choice(swappable)
        chars[at], chars[at + 1] = chars[at + 1], chars[at]
    return "".join(chars)


PERTURBATIONS: dict[str, Callable[[str, random.Random], str]] = {
    "typos": _typos,
    "lowercase": lambda text, rng: text.lower(),
    "uppercase": lambda text, rng: text.upper(),
}


def perturb(text: str, kind: str, seed: int = 0) -> str:
    """``text`` changed by the perturbation ``kind`` (typos, lowercase, uppercase), the same for the same seed."""
    if kind not in PERTURBATIONS:
        raise InvalidValueError(
            f"robustness={kind!r} is not allowed: choose from {', '.join(PERTURBATIONS)}."
        )
    return PERTURBATIONS[kind](text, random.Random(f"{seed}:{kind}:{text}"))
