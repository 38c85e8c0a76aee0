"""Collecting rankings from a person: k sampled completions per prompt, ranked in the terminal.

:func:`collect_rankings` samples k completions per prompt with the generation engine and
asks a person to rank them (``2 1 3``; ``2=1 3`` for a tie; ``s`` skips; ``q`` or end of input stops).
Each ranking is appended to the output file and flushed to disk at once, so a crash loses nothing
already ranked; prompts already in the output file are not asked again, so a stopped session resumes.
A tie in an answer gets competition ranks (``2=1 3`` gives completions 1 and 2 rank 1, completion 3
rank 3); completions an answer leaves out get ``null``.

The rankings file written here is what :func:`genlab.alignment.feedback.import_rankings` reads.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from genlab.alignment.feedback import RUN_KIND, Rank, Ranking, RankingsError, _json_lines, _read_text
from genlab.errors import InvalidValueError
from genlab.evaluation.judge import judgements_from_ranking
from genlab.lineage import record_run

if TYPE_CHECKING:
    from genlab.generation import GenerationSettings
    from genlab.models.load import LoadedModel

Answer = list[Rank] | Literal["skip", "quit"]
ANSWER_HELP = "best first, e.g. `2 1 3`; `2=1 3` for a tie; `s` to skip; `q` to stop"


class AnswerError(ValueError):
    """An answer that is not a ranking; the person is asked again."""


def parse_answer(text: str, count: int) -> Answer:
    """``"2 1 3"`` → ranks ``[2, 1, 3]``; ``"2=1 3"`` → ``[1, 1, 3]``; ``"3 1"`` → ``[2, None, 1]``."""
    text = text.strip().lower()
    if text in {"s", "skip"}:
        return "skip"
    if text in {"q", "quit"}:
        return "quit"
    groups = [token.split("=") for token in re.sub(r"\s*=\s*", "=", text.replace(",", " ")).split()]
    ranks: list[Rank] = [None] * count
    placed = 0  # completions ranked so far, all better than the next group
    for group in groups:
        for item in group:
            if not re.fullmatch(r"[0-9]+", item) or not 1 <= int(item) <= count:
                raise AnswerError(f"`{item}` is not a completion number (1 to {count}).")
            if ranks[int(item) - 1] is not None:
                raise AnswerError(f"completion {item} is ranked twice.")
            ranks[int(item) - 1] = placed + 1
        placed += len(group)
    if placed < 2:
        raise AnswerError("rank at least two completions (or `s` to skip).")
    return ranks


def ask_ranking(
    prompt: str, completions: Sequence[str], *, ask: Callable[[str], str], show: Callable[[str], None], header: str = ""
) -> Answer:
    """Show the prompt and numbered completions; ask until the answer is a ranking, ``skip`` or ``quit``."""
    show(f"\n{header}prompt: {prompt}")
    for number, completion in enumerate(completions, start=1):
        show(f"  [{number}] {completion}")
    while True:
        try:
            text = ask(f"rank ({ANSWER_HELP}): ")
        except EOFError:  # the input ended (Ctrl-D, or a piped file ran out): stop, keep what is ranked
            return "quit"
        try:
            answer = parse_answer(text, len(completions))
        except AnswerError as error:
            show(str(error))
            continue
        if isinstance(answer, list) and None in answer:
            left_out = ", ".join(str(i + 1) for i, rank in enumerate(answer) if rank is None)
            show(f"(left unranked: {left_out})")
        return answer


def _ranked_prompts(path: Path) -> set[str]:
    """Prompts already in an output file (lines that are not rankings are left for import to report)."""
    if not path.is_file():
        return set()
    done = set()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("prompt"), str):
            done.add(row["prompt"])
    return done


def append_line(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line and force it to disk, so a crash right after loses nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cut_short = False  # a line cut short by an earlier crash must not swallow this one
    if path.is_file() and path.stat().st_size > 0:
        with path.open("rb") as reader:
            reader.seek(-1, os.SEEK_END)
            cut_short = reader.read(1) != b"\n"
    with path.open("ab") as handle:
        if cut_short:
            handle.write(b"\n")
        handle.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())


@dataclass
class CollectTally:
    ranked: int = 0  # rankings written in this session
    skipped: int = 0  # prompts skipped by the person, or with fewer than 2 distinct completions
    already_ranked: int = 0  # prompts found in the output file, not asked again
    stopped: bool = False  # the person quit (or the input ended) before the last prompt
    pairs: int = 0  # pairwise judgements the rankings imply (genlab.evaluation.judge), ties included
    ties: int = 0


def rank_prompts(
    prompts: Sequence[str],
    sample: Callable[[int, str], list[str]],
    output: str | Path,
    *,
    ask: Callable[[str], str],
    show: Callable[[str], None],
) -> CollectTally:
    """The interactive loop: ``sample(index, prompt)`` gives completions; each ranking is appended to ``output``."""
    output = Path(output)
    done = _ranked_prompts(output)
    tally = CollectTally(already_ranked=sum(prompt in done for prompt in prompts))
    todo = [(index, prompt) for index, prompt in enumerate(prompts) if prompt not in done]
    if tally.already_ranked:
        show(f"{tally.already_ranked} prompt(s) already ranked in {output}; {len(todo)} to go.")
    for number, (index, prompt) in enumerate(todo, start=1):
        completions = list(dict.fromkeys(sample(index, prompt)))  # identical samples shown once
        header = f"[{number}/{len(todo)}] "
        if len(completions) < 2:
            show(f"\n{header}prompt: {prompt}\n(the samples were all identical; skipped)")
            tally.skipped += 1
            continue
        answer = ask_ranking(prompt, completions, ask=ask, show=show, header=header)
        if answer == "quit":
            tally.stopped = True
            break
        if answer == "skip":
            tally.skipped += 1
            continue
        append_line(output, Ranking(prompt, tuple(completions), tuple(answer)).to_row())
        tally.ranked += 1
        verdicts = [judgement.outcome() for _, _, judgement in judgements_from_ranking(answer)]
        tally.pairs, tally.ties = tally.pairs + len(verdicts), tally.ties + verdicts.count("tie")
    return tally


def read_prompts(path: str | Path) -> list[str]:
    """Prompts from a ``.jsonl``/``.json`` file (a ``"prompt"`` field a line) or plain text (one a line)."""
    path = Path(path)
    text = _read_text(path, "prompts")
    if path.suffix.lower() in {".jsonl", ".json"}:
        prompts = []
        for number, row in _json_lines(path, text):
            if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
                raise RankingsError(f'{path} line {number} has no "prompt" text.')
            prompts.append(row["prompt"])
    else:
        prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise RankingsError(f"{path} holds no prompts.")
    return list(dict.fromkeys(prompts))  # a prompt listed twice is ranked once


@dataclass(frozen=True)
class CollectResult:
    run_id: str
    output: Path
    prompts: int
    ranked: int
    skipped: int
    already_ranked: int
    stopped: bool

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "output": str(self.output)}

    def table(self) -> tuple[str, list[str], list[tuple[Any, ...]]]:
        rows = [(key, value) for key, value in self.to_dict().items() if key != "run_id"]
        return "feedback collect", ["item", "value"], rows


def collect_rankings(
    model: str | LoadedModel,
    prompts_file: str | Path,
    output: str | Path,
    *,
    k: int = 3,
    settings: GenerationSettings | None = None,
    chat: bool = True,
    ask: Callable[[str], str] = input,
    show: Callable[[str], None] = print,
) -> CollectResult:
    """Sample ``k`` completions per prompt from ``model`` (a name, folder or LoadedModel) and have a person rank them.

    ``settings`` are :class:`~genlab.generation.GenerationSettings` (default: temperature 1, 64 new
    tokens); with a seed, prompt ``i`` samples with seed ``seed + i * k`` and its choices with the
    following seeds, so every completion is reproducible and the k of a prompt differ.
    """
    from genlab.generation import GenerationSettings
    from genlab.generation.api import engine_for

    if k < 2:
        raise InvalidValueError(f"k={k} is not allowed: ranking needs at least 2 completions per prompt.")
    settings = settings or GenerationSettings(temperature=1.0)
    if settings.greedy:
        raise InvalidValueError(
            "temperature=0 is not allowed for collecting feedback: "
            "the k completions must be sampled (temperature > 0) to differ."
        )
    settings = settings.with_overrides(num_return_sequences=k)
    prompts_file, output = Path(prompts_file), Path(output)
    prompts = read_prompts(prompts_file)
    if isinstance(model, str):
        show(f"loading {model} ...")
    engine = engine_for(model)
    for number, prompt in enumerate(prompts, start=1):  # all prompts fit, or none is asked
        text = engine.format_prompt(prompt, chat=chat)
        tokens = len(engine.encode(text, formatted_chat=text != prompt))
        engine.check_fits(tokens, settings.max_new_tokens, f"prompt {number} of {prompts_file}")

    def sample(index: int, prompt: str) -> list[str]:
        seeded = settings if settings.seed is None else settings.with_overrides(seed=settings.seed + index * k)
        (completion,) = engine.generate([prompt], seeded, chat=chat)
        return [choice.text for choice in completion.choices]

    name = model if isinstance(model, str) else engine.loaded.name
    config = {"stage": "collect", "model": name, "prompts": str(prompts_file), "output": str(output), "k": k,
              "chat": chat, "settings": settings.model_dump()}  # fmt: skip
    with record_run(RUN_KIND, config) as run:
        run.use(prompts_file, "dataset", {"role": "prompts", "prompts": len(prompts)})
        if engine.loaded.path is not None:
            run.use(engine.loaded.path, "model", {"model": name})
        with engine.hold_packed_weights():  # reordered once for the whole session
            tally = rank_prompts(prompts, sample, output, ask=ask, show=show)
        if output.is_file():
            run.log_artifact(output, "dataset", {"role": "rankings", "prompts": len(_ranked_prompts(output))})
        run.log_metrics({"ranked": tally.ranked, "skipped": tally.skipped, "pairs": tally.pairs, "ties": tally.ties})
    return CollectResult(
        run.id, output, len(prompts), tally.ranked, tally.skipped, tally.already_ranked, tally.stopped
    )
