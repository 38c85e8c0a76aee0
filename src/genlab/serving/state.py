"""What every route of one server shares: its config, backend, metrics, limits, embedder and job store."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from genlab.serving.backend import Backend
from genlab.serving.config import ServeConfig
from genlab.serving.embeddings import EmbeddingService
from genlab.serving.idle import ModelLifecycle
from genlab.serving.limits import ConcurrencyLimit
from genlab.serving.metrics import ServerMetrics


@dataclass
class ServerState:
    config: ServeConfig
    backend: Backend
    metrics: ServerMetrics
    lifecycle: ModelLifecycle
    limiter: ConcurrencyLimit
    embeddings: EmbeddingService
    waiters: Any  # anyio.CapacityLimiter: worker threads that wait on generation
    jobs: Any = None  # genlab.serving.jobs.JobStore, once started
    lineage_run_id: str | None = None  # the "serve" run recording this endpoint
    started: int = field(default_factory=lambda: int(time.time()))
