"""Perturbations for robustness: deterministic, and doing what their names say."""

import re
import subprocess
import sys
from collections import Counter

import pytest

from genlab.errors import InvalidValueError
from genlab.evaluation.benchmarks import perturb

# 24 words longer than 3 letters (What, does, water, turn, into, when, heated, until, boils, kettle, stove,
# which, gases, leave, surface, while, kitchen, window, stays, closed, during, cold, winter, mornings) and
# shorter ones (it, is, in, a, on, and, the).
TEXT = (
    "What does water turn into when it is heated until it boils in a kettle on a stove, and which "
    "gases leave the surface while the kitchen window stays closed during cold winter mornings?"
)
WORD = re.compile(r"[^\W\d_]+")


def _long_words(text: str) -> list[str]:
    return [w for w in WORD.findall(text) if len(w) > 3]


def _is_one_adjacent_swap(before: str, after: str) -> bool:
    diffs = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    return len(diffs) == 2 and diffs[1] == diffs[0] + 1 and before[diffs[0]] == after[diffs[1]] and (
        before[diffs[1]] == after[diffs[0]]
    )


def test_case_perturbations() -> None:
    assert perturb("Which River flows through London?", "lowercase") == "which river flows through london?"
    assert perturb("Which River flows through London?", "uppercase") == "WHICH RIVER FLOWS THROUGH LONDON?"


def test_typos_swap_adjacent_letters_in_ten_percent_of_long_words() -> None:
    words = _long_words(TEXT)
    assert len(words) == 24  # counted by hand in the comment above TEXT
    changed = perturb(TEXT, "typos", seed=0)
    assert len(changed) == len(TEXT) and Counter(changed) == Counter(TEXT)  # letters moved, none added
    after = WORD.findall(changed)
    before = WORD.findall(TEXT)
    swapped = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert len(swapped) == 2  # round(10% of 24)
    assert all(len(b) > 3 and _is_one_adjacent_swap(b, a) for b, a in swapped)


def test_typos_touch_at_least_one_word_and_skip_short_ones() -> None:
    changed = perturb("The weather is fine", "typos", seed=3)  # 2 long words: round(0.2) = 0, so 1
    assert changed != "The weather is fine"
    assert changed.split()[0] == "The" and changed.split()[2] == "is"
    assert perturb("I am ok, so is he.", "typos") == "I am ok, so is he."  # no word longer than 3 letters


def test_typos_are_deterministic_and_depend_on_the_seed() -> None:
    assert perturb(TEXT, "typos", seed=1) == perturb(TEXT, "typos", seed=1)
    assert len({perturb(TEXT, "typos", seed=s) for s in range(5)}) > 1


def test_typos_are_the_same_in_another_process() -> None:
    # Python randomises str hashes per process; the perturbation must not depend on them.
    code = (
        "import sys; from genlab.evaluation.benchmarks.robustness import perturb; "
        "sys.stdout.write(perturb(sys.argv[1], 'typos', seed=7))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code, TEXT], capture_output=True, text=True, check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    )  # fmt: skip
    assert other.stdout == perturb(TEXT, "typos", seed=7)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(InvalidValueError, match="robustness='shuffle'.*typos, lowercase, uppercase"):
        perturb("text", "shuffle")
