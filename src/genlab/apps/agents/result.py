"""What every agent returns, and how its transcript is recorded in lineage (a run of kind "agent")."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from genlab.atomic import atomic_write_json


@dataclass
class Step:
    """One model turn: what it wrote, the action genlab parsed from it, and what came back."""

    model_output: str
    thought: str = ""
    action: str | None = None  # None: no parsable action in the model's output
    argument: str = ""
    observation: str = ""
    refused: bool = False  # an action outside the set, or one the sandbox refused


@dataclass
class AgentResult:
    mode: str  # "cot", "pal" or "react"
    question: str
    answer: str | None  # None when the agent gave no answer (error says why)
    error: str | None = None
    steps: list[Step] = field(default_factory=list)
    program: str | None = None  # PAL: the program that ran
    program_output: str | None = None  # PAL: what it printed
    prompt: str = ""  # the last prompt the model read
    model: str = ""
    run_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.answer is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_agent_run(result: AgentResult, config: dict[str, Any]) -> AgentResult:
    """Write the transcript to the run's folder and record the run; sets ``result.run_id``."""
    from genlab.lineage import record_run

    with record_run("agent", {"mode": result.mode, "question": result.question, "model": result.model, **config}) as run:
        result.run_id = run.id
        path = atomic_write_json(run.dir / "transcript.json", result.to_dict())
        run.log_artifact(path, "transcript", {"mode": result.mode, "answered": result.ok})
        run.log_metrics({"steps": float(len(result.steps)), "answered": float(result.ok),
                         "refused_actions": float(sum(s.refused for s in result.steps))})  # fmt: skip
    return result
