"""Plain records read back from the lineage store."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple


@dataclass(frozen=True)
class ArtifactRecord:
    id: str
    kind: str
    path: str
    sha256: str
    size_bytes: int
    created_at: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Any) -> ArtifactRecord:
        return cls(
            id=row["id"],
            kind=row["kind"],
            path=row["path"],
            sha256=row["sha256"],
            size_bytes=row["size_bytes"],
            created_at=row["created_at"],
            metadata=json.loads(row["metadata"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunRecord:
    id: str
    kind: str
    status: str
    started_at: str
    ended_at: str | None
    config: dict[str, Any]
    genlab_version: str
    error: str | None
    host: str
    pid: int

    @classmethod
    def from_row(cls, row: Any) -> RunRecord:
        return cls(
            id=row["id"],
            kind=row["kind"],
            status=row["status"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            config=json.loads(row["config"]),
            genlab_version=row["genlab_version"],
            error=row["error"],
            host=row["host"],
            pid=row["pid"],
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MetricPoint(NamedTuple):
    """One logged value of a metric: a point of its curve, with the time it was recorded."""

    name: str
    value: float
    step: int | None
    recorded_at: str


class RunLink(NamedTuple):
    """A run linked to another: a lifecycle's step, a step's library run, a fine-tune's evaluation."""

    run_id: str
    relation: str  # "child" for steps and library runs; a label ("baseline", "tuned") for evaluations
