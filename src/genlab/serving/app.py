"""``create_app(config)``: the FastAPI application behind ``genlab serve``.

    GET  /                       the playground page (open)
    GET  /health                 liveness (open); what is loaded, to a caller with the key (or with no key set)
    GET  /docs, /redoc, /openapi.json   the API's description: open with no key set or --public-docs, else keyed
    GET  /metrics                Prometheus metrics
    GET  /v1/models              the base model, its adapters, the embedder
    POST /v1/load_lora_adapter, /v1/unload_lora_adapter   adapters without a restart (with --adapter-root)
    POST /v1/completions         text completion (stream: server-sent events)
    POST /v1/chat/completions    chat completion (stream: server-sent events)
    POST /v1/embeddings          sentence embeddings
    POST /tokenize, /detokenize; GET /tokenizer_info   the model's tokenizer, in vLLM's shape
    POST /v1/jobs                queue a chat/completion request; GET /v1/jobs/{id} for its answer

The backend is built (and its weights loaded) when the app is created, so a bad model or adapter
fails before the server listens. Start-up (the app's lifespan) opens the job store, requeues jobs a
crash interrupted, starts the job workers and the idle-unload watcher, and records the endpoint as a
lineage run; shutdown stops them in reverse order -- the job workers first (a job cut short is left
for the next start to recover), then the store they write to.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import FastAPI

from genlab.serving.api_errors import install_error_handlers
from genlab.serving.backend import Backend
from genlab.serving.config import ServeConfig
from genlab.serving.embeddings import EmbeddingService
from genlab.serving.idle import ModelLifecycle
from genlab.serving.limits import BodySizeLimit, ConcurrencyLimit
from genlab.serving.metrics import RequestMetricsMiddleware, ServerMetrics
from genlab.serving.state import ServerState

log = logging.getLogger(__name__)


def make_backend(config: ServeConfig) -> Backend:
    """The backend ``config.backend`` names, with the model (and adapters) loaded."""
    if config.backend == "genlab":
        from genlab.serving.genlab_backend import GenlabBackend

        return GenlabBackend(config.model, config.adapters, max_batch=config.batch_size, threads=config.threads)
    from genlab.serving.backends import get_backend

    options: dict[str, Any] = {}
    if config.backend in ("ctranslate2", "onnxruntime-genai"):  # they batch requests and set their own threads, as genlab's engine does
        options = {"max_batch": config.batch_size, "threads": config.threads}
    if config.backend == "onnxruntime-genai" and config.lanes is not None:
        options["lanes"] = config.lanes
    backend: Backend = get_backend(config.backend)(config.model, adapters=config.adapters, **options)
    backend.load()
    return backend


def create_app(config: ServeConfig | None = None, *, backend: Backend | None = None) -> FastAPI:
    """The app for ``config``; pass ``backend`` to serve one already built (tests, embedding in a program)."""
    from genlab import __version__
    from genlab.serving import routes_docs, routes_jobs, routes_models, routes_openai, routes_service, routes_tokens

    config = config or ServeConfig()
    metrics = ServerMetrics()
    if backend is None:
        started = time.perf_counter()
        backend = make_backend(config)
        metrics.cold_start(time.perf_counter() - started)
    state = ServerState(
        config=config,
        backend=backend,
        metrics=metrics,
        lifecycle=ModelLifecycle(backend, metrics, config.idle_unload),
        limiter=ConcurrencyLimit(config.max_concurrent),
        embeddings=EmbeddingService(config.embedder),
        # every request in flight may wait in a thread; a few more for tokenising and jobs
        waiters=anyio.CapacityLimiter(config.max_concurrent + config.job_workers + 4),
    )
    metrics.watch(queue_depth=lambda: int(getattr(backend, "queue_depth", 0)), loaded=lambda: backend.loaded)
    decode_stats = getattr(backend, "decode_stats", None)
    if decode_stats is not None:
        metrics.watch_batches(decode_stats)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with contextlib.ExitStack() as stack:
            _start_jobs(state, stack)
            state.lifecycle.start()
            stack.callback(state.lifecycle.stop)
            if config.record_lineage:
                _record_endpoint(state, stack)
            yield
        backend.unload()

    app = FastAPI(
        title="genlab",
        version=__version__,
        summary="OpenAI-compatible API over genlab's models (real-time, streaming, async jobs).",
        lifespan=lifespan,
        openapi_url=None,  # served by routes_docs, behind the key unless --public-docs
        docs_url=None,
        redoc_url=None,
    )
    app.state.serving = state
    install_error_handlers(app)
    app.include_router(routes_service.router)
    app.include_router(routes_models.router)
    app.include_router(routes_openai.router)
    app.include_router(routes_tokens.router)
    app.include_router(routes_jobs.router)
    app.include_router(routes_docs.router)
    app.add_middleware(BodySizeLimit, max_bytes=config.max_body_bytes)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)  # outermost: counts 413s too
    return app


def _start_jobs(state: ServerState, stack: contextlib.ExitStack) -> None:
    from genlab.serving.job_worker import JobWorker
    from genlab.serving.jobs import JobStore, default_jobs_db
    from genlab.serving.routes_jobs import run_job

    store = JobStore(state.config.jobs_db or default_jobs_db(), max_attempts=state.config.job_max_attempts)
    stack.callback(store.close)
    recovered = store.recover()
    if recovered:
        log.warning("recovered %d job(s) interrupted by a crash or a shutdown", recovered)
    state.jobs = stack.enter_context(_cleared(state, store))
    state.metrics.watch_jobs(store.counts)
    shutting_down = threading.Event()  # cancels the jobs in hand: they are recovered at the next start
    workers = [
        JobWorker(store, lambda kind, body: run_job(state, kind, body, cancel=shutting_down), name=f"genlab-jobs-{index}").start()
        for index in range(state.config.job_workers)
    ]
    stack.callback(_stop_workers, workers, shutting_down)


def _stop_workers(workers: list[Any], shutting_down: threading.Event) -> None:
    """Mark the workers stopping before cutting their jobs short (so a cut job is not taken for a failure), then wait."""
    for worker in workers:
        worker.ask_to_stop()
    shutting_down.set()
    for worker in workers:
        if not worker.stop(30):
            log.warning("job worker %s did not stop within 30 s", worker.name)


@contextlib.contextmanager
def _cleared(state: ServerState, store: Any) -> Any:
    try:
        yield store
    finally:
        state.jobs = None


def _record_endpoint(state: ServerState, stack: contextlib.ExitStack) -> None:
    """The endpoint as a lineage run (open while the server runs): its model, adapters and address;
    at shutdown, the requests it answered and the tokens it read and wrote."""
    from genlab.lineage import record_run

    config = state.config
    run = stack.enter_context(
        record_run("serve", {
            "model": config.model, "adapters": config.adapters, "backend": config.backend, "host": config.host,
            "port": config.port, "hostname": socket.gethostname(), "models": state.backend.models(),
            "max_batch": config.batch_size, "idle_unload": config.idle_unload,
        })  # fmt: skip
    )
    model_path = getattr(state.backend, "model_path", None)
    if model_path is not None:
        run.use(model_path, "model", {"model": config.model})
    for name, path in config.adapters.items():
        from genlab.models.adapters import resolve_adapter

        run.use(resolve_adapter(path), "adapter", {"adapter": name})
    state.lineage_run_id = run.id
    stack.callback(lambda: run.log_metrics({name: float(value) for name, value in state.metrics.totals.items()}))
