"""Human feedback: a person ranks a model's completions; rankings become pairwise preferences.

A rankings file is JSONL, one prompt a line::

    {"prompt": "...", "completions": ["a", "b", "c"], "ranks": [2, 1, 3]}

``ranks[i]`` is the rank of ``completions[i]``: 1 is best, and only the order matters (``[1, 2, 2]``
and ``[1, 3, 3]`` say the same). Other fields on a line are ignored.

Pairs. Reward models are trained on comparisons, not rankings: as in InstructGPT (Ouyang et al. 2022,
https://arxiv.org/abs/2203.02155), K ranked completions give K(K-1)/2 pairs, one per two completions,
each written as trl's preference row ``{"prompt", "chosen", "rejected"}`` with the better one chosen.
The pairs of a prompt come best first: ranks 1, 2, 3 give (1 > 2), (1 > 3), (2 > 3).

- Ties: equal ranks say neither is better, so two tied completions give no pair with each other
  (each still pairs with the completions ranked above or below it). ``[1, 1, 3]`` gives two pairs.
- Incomplete rankings: a ``null`` rank means the person did not rank that completion; only the
  ranked ones are compared, and an unranked completion gives no pair at all. ``[1, null, 2]`` gives
  one pair.

Every two completions of a prompt are counted exactly once, so
``pairs + ties_skipped + unranked_skipped`` is the sum of K(K-1)/2 over the prompts.

A malformed line (not JSON, a field missing, ranks not matching the completions in number, a rank
that is not a positive integer or null, two identical completions, fewer than two completions)
fails the whole import with one sentence naming its line, and nothing is written: preference data
is never dropped silently. Blank lines are allowed.

Collecting rankings from a person: :mod:`genlab.alignment.feedback_collect`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genlab.atomic import atomic_write_text
from genlab.errors import GenlabError
from genlab.lineage import record_run

RUN_KIND = "feedback"
NOTHING_WRITTEN = "; nothing was written"
Rank = int | None


class RankingsError(GenlabError):
    """A rankings or prompts file that cannot be read as one."""


@dataclass(frozen=True)
class Ranking:
    """One prompt's completions and their ranks (1 = best, None = not ranked)."""

    prompt: str
    completions: tuple[str, ...]
    ranks: tuple[Rank, ...]

    @classmethod
    def from_row(cls, row: Any) -> Ranking:
        """Validate one parsed line; a problem raises ValueError with a phrase that follows "line N"."""
        if not isinstance(row, dict):
            raise ValueError(f"is not a JSON object (it is a {type(row).__name__})")
        for name in ("prompt", "completions", "ranks"):
            if name not in row:
                raise ValueError(f'has no "{name}" field')
        prompt, completions, ranks = row["prompt"], row["completions"], row["ranks"]
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError('has a "prompt" that is not a non-empty string')
        if not isinstance(completions, list) or not all(isinstance(c, str) for c in completions):
            raise ValueError('has a "completions" field that is not a list of strings')
        if len(completions) < 2:
            raise ValueError(f"has {len(completions)} completion(s); ranking needs at least 2")
        if not isinstance(ranks, list):
            raise ValueError('has a "ranks" field that is not a list')
        if len(ranks) != len(completions):
            raise ValueError(f"has {len(completions)} completions but {len(ranks)} ranks")
        for index, rank in enumerate(ranks, start=1):
            if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
                raise ValueError(
                    f"gives completion {index} the rank {json.dumps(rank)}; ranks are positive integers"
                    " (1 = best) or null"
                )
        first_seen: dict[str, int] = {}
        for index, completion in enumerate(completions, start=1):
            if completion in first_seen:
                raise ValueError(f"has identical completions {first_seen[completion]} and {index}")
            first_seen[completion] = index
        return cls(prompt, tuple(completions), tuple(ranks))

    def to_row(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "completions": list(self.completions), "ranks": list(self.ranks)}


@dataclass
class Pairs:
    """Preference rows made from rankings, with what was not paired and why."""

    rows: list[dict[str, str]] = field(default_factory=list)  # {"prompt", "chosen", "rejected"}
    prompts: int = 0
    ties_skipped: int = 0  # pairs of completions with equal ranks
    unranked_skipped: int = 0  # pairs with at least one unranked completion


def rankings_to_pairs(rankings: Iterable[Ranking]) -> Pairs:
    """Every two completions with different ranks → one preference row, best first per prompt."""
    result = Pairs()
    for ranking in rankings:
        result.prompts += 1
        # (rank, position): best first, tied completions in the order they appear on the line
        ranked = sorted((rank, index) for index, rank in enumerate(ranking.ranks) if rank is not None)
        n_ranked, n_unranked = len(ranked), len(ranking.ranks) - len(ranked)
        result.unranked_skipped += n_unranked * (n_unranked - 1) // 2 + n_unranked * n_ranked
        for i, (better_rank, better) in enumerate(ranked):
            for worse_rank, worse in ranked[i + 1 :]:
                if better_rank == worse_rank:
                    result.ties_skipped += 1
                    continue
                result.rows.append(
                    {
                        "prompt": ranking.prompt,
                        "chosen": ranking.completions[better],
                        "rejected": ranking.completions[worse],
                    }
                )
    return result


def _read_text(path: Path, what: str) -> str:
    if not path.is_file():
        raise RankingsError(f"no such {what} file: {path}.")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RankingsError(f"{path} is not UTF-8 text.") from None


def _json_lines(path: Path, text: str, tail: str = "") -> Iterable[tuple[int, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise RankingsError(
                f"{path} line {number} is not valid JSON ({error.msg}, column {error.colno}){tail}."
            ) from None
        yield number, row


def read_rankings(path: str | Path) -> list[Ranking]:
    """Every ranking in a rankings file; the first malformed line raises :class:`RankingsError`."""
    path = Path(path)
    rankings = []
    for number, row in _json_lines(path, _read_text(path, "rankings"), NOTHING_WRITTEN):
        try:
            rankings.append(Ranking.from_row(row))
        except ValueError as error:
            raise RankingsError(f"{path} line {number} {error}{NOTHING_WRITTEN}.") from None
    if not rankings:
        raise RankingsError(f"{path} holds no rankings (it is empty).")
    return rankings


@dataclass(frozen=True)
class ImportResult:
    run_id: str
    output: Path
    prompts: int
    pairs: int
    ties_skipped: int
    unranked_skipped: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "output": str(self.output),
            "prompts": self.prompts,
            "pairs": self.pairs,
            "ties_skipped": self.ties_skipped,
            "unranked_skipped": self.unranked_skipped,
        }

    def table(self) -> tuple[str, list[str], list[tuple[Any, ...]]]:
        rows = [(key, value) for key, value in self.to_dict().items() if key != "run_id"]
        return "feedback import", ["item", "value"], rows


def import_rankings(path: str | Path, output: str | Path) -> ImportResult:
    """Turn a rankings file into a preference-pairs file (written atomically) and record the run."""
    path, output = Path(path), Path(output)
    rankings = read_rankings(path)  # all rows checked before anything is written or recorded
    if output.resolve() == path.resolve():
        raise RankingsError(f"the output {output} is the rankings file itself; give another --output path.")
    pairs = rankings_to_pairs(rankings)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in pairs.rows)
    config = {"stage": "import", "rankings": str(path), "output": str(output)}
    with record_run(RUN_KIND, config) as run:
        run.use(path, "dataset", {"role": "rankings", "prompts": pairs.prompts})
        try:
            atomic_write_text(output, text)
        except OSError as error:
            raise RankingsError(f"cannot write {output}: {error.strerror or error}.") from None
        run.log_artifact(
            output,
            "dataset",
            {
                "role": "preference_pairs",
                "format": "prompt/chosen/rejected",
                "pairs": len(pairs.rows),
                "prompts": pairs.prompts,
                "ties": pairs.ties_skipped,
                "unranked": pairs.unranked_skipped,
            },
        )
        run.log_metrics(
            {
                "prompts": pairs.prompts,
                "pairs": len(pairs.rows),
                "ties_skipped": pairs.ties_skipped,
                "unranked_skipped": pairs.unranked_skipped,
            }
        )
    return ImportResult(run.id, output, pairs.prompts, len(pairs.rows), pairs.ties_skipped, pairs.unranked_skipped)
