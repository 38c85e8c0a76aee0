"""`genlab eval judge RUN_A RUN_B --judge MODEL_OR_PROVIDER`: which run's predictions a judge prefers.

The two runs must have predicted the same rows (same ids and inputs; one sentence otherwise). For
each row the judge sees the input and the two predictions, in both orders (:mod:`genlab.evaluation.judge`),
and the result is the win rate of RUN_B over RUN_A (ties count half) with its 95% bootstrap interval,
the wins, losses and ties, and the order-agreement rate. ``--judge`` is a local model (a pack, folder or
hub id: the default model works; or a loaded model), ``openai:MODEL`` for any OpenAI-compatible provider, or ``human``.
The verdicts are kept (``judgements.jsonl``) and the run is recorded in lineage with both runs' predictions
as inputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genlab.apps.providers import REMOTE_PREFIX, get_provider
from genlab.atomic import atomic_write_json, atomic_write_text
from genlab.errors import GenlabError, InvalidValueError
from genlab.evaluation.bootstrap import bootstrap_interval
from genlab.evaluation.judge import (
    TIE_MARGIN,
    AskFn,
    comparison_question,
    human_judge,
    judge_both_orders,
    local_judge,
    provider_judge,
    tally,
)  # fmt: skip
from genlab.evaluation.paired import different_rows
from genlab.lineage import LineageStore, record_run
from genlab.models.load import LoadedModel, load_model

HUMAN = "human"
DEFAULT_INSTRUCTION = "Which reply is the better response to the text above (for a summary: the more accurate and complete)?"


@dataclass
class JudgeResult:
    run_id: str
    runs: list[str]  # [baseline, challenger]
    n: int
    metrics: dict[str, float]  # win_rate (of the challenger), wins, losses, ties, order_agreement
    intervals: dict[str, list[float]] = field(default_factory=dict)  # win_rate -> [low, high]
    judgements: str = ""  # path of judgements.jsonl

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge_runs(
    run_a: str,
    run_b: str,
    *,
    judge: str | LoadedModel = "smollm2-135m-instruct",
    limit: int | None = None,
    both_orders: bool = True,
    tie_margin: float = TIE_MARGIN,
    chat: bool = True,
    batch_size: int = 8,
    instruction: str = DEFAULT_INSTRUCTION,
    ask_line: Callable[[str], str] = input,
    show: Callable[[str], None] = print,
) -> JudgeResult:
    """Judge RUN_B's predictions against RUN_A's on their shared rows; record the verdicts as a judge run."""
    if limit is not None and limit < 1:
        raise InvalidValueError(f"limit={limit!r} is not allowed: judge at least 1 row.")
    if not 0.0 <= tie_margin < 0.5:
        raise InvalidValueError(f"tie_margin={tie_margin!r} is not allowed: use a value from 0 up to (not including) 0.5.")
    files, rows = _predictions(run_a, run_b)
    why = different_rows(rows[0], rows[1])
    if why is not None:
        raise GenlabError(f"cannot judge {run_a} against {run_b}: {why}")
    by_id = {row["id"]: row for row in rows[1]}
    pairs = [(row, by_id[row["id"]]) for row in rows[0]][:limit]
    config = {"runs": [run_a, run_b], "judge": judge if isinstance(judge, str) else judge.name, "limit": limit, "both_orders": both_orders,
              "tie_margin": tie_margin, "chat": chat, "instruction": instruction}  # fmt: skip
    with record_run("judge", config) as run:
        for path in files:
            run.use(path, "predictions")
        ask = _judge(judge, instruction, chat=chat, batch_size=batch_size, ask_line=ask_line, show=show, run=run)
        items = [(a.get("input", ""), a.get("prediction", ""), b.get("prediction", "")) for a, b in pairs]
        judgements = judge_both_orders(ask, items, both_orders=both_orders)
        counts = tally(judgements, tie_margin=tie_margin)
        interval = bootstrap_interval(counts.per_row)
        lines = [
            json.dumps({"id": a["id"], "input": a.get("input", ""), "baseline": a.get("prediction", ""),
                        "challenger": b.get("prediction", ""), "prob_baseline": j.prob_first, "by_order": j.by_order,
                        "outcome": {"first": "baseline", "second": "challenger", "tie": "tie"}[j.outcome(tie_margin)]})
            + "\n"
            for (a, b), j in zip(pairs, judgements, strict=True)
        ]  # fmt: skip
        judgements_file = atomic_write_text(run.dir / "judgements.jsonl", "".join(lines))
        run.log_artifact(judgements_file, "judgements", {"n": len(pairs)})
        intervals = {"win_rate": interval.to_list()}
        run.log_artifact(atomic_write_json(run.dir / "intervals.json", {"confidence": 0.95, "intervals": intervals}), "intervals")
        metrics = {k: float(v) for k, v in counts.to_dict().items()}
        run.log_metrics(metrics)
    return JudgeResult(run.id, [run_a, run_b], len(pairs), metrics, intervals, str(judgements_file))


def _predictions(run_a: str, run_b: str) -> tuple[list[Path], list[list[dict[str, Any]]]]:
    files, rows = [], []
    with LineageStore() as store:
        for run_id in (run_a, run_b):
            store.get_run(run_id)  # an unknown id fails here, in one sentence
            outputs = [a for a in store.artifacts_of(run_id, "output") if a.kind == "predictions"]
            if not outputs or not Path(outputs[0].path).is_file():
                raise GenlabError(f"run {run_id} has no predictions file to judge (judge two `genlab eval` runs).")
            path = Path(outputs[0].path)
            files.append(path)
            rows.append([json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()])
    return files, rows


def _judge(
    spec: str | LoadedModel, instruction: str, *, chat: bool, batch_size: int, ask_line: Callable[[str], str],
    show: Callable[[str], None], run: Any,
) -> AskFn:  # fmt: skip
    def question(text: str, first: str, second: str) -> str:
        return comparison_question(text, first, second, instruction)

    if isinstance(spec, LoadedModel):
        return local_judge(spec, question, chat=chat, batch_size=batch_size)
    if spec == HUMAN:
        return human_judge(ask_line, show)
    if spec.startswith(REMOTE_PREFIX):
        provider = get_provider(spec)
        return provider_judge(lambda prompt: provider.complete(prompt, max_tokens=8), question)
    loaded = load_model(spec)
    if loaded.path is not None:
        run.use(loaded.path, "model", {"model": loaded.name, "role": "judge"})
    return local_judge(loaded, question, chat=chat, batch_size=batch_size)
