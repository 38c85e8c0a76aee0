"""Prometheus metrics of one server (prometheus-client, a registry per app so tests can run several).

    genlab_requests_total{route,method,status}      requests answered, by route template and status
    genlab_request_seconds{route}                   latency histogram (a stream counts until its last byte)
    genlab_requests_in_flight                       requests being answered now
    genlab_prompt_tokens_total{model}               tokens read
    genlab_completion_tokens_total{model}           tokens generated
    genlab_queue_depth                              rows waiting for a place in the batch
    genlab_model_loaded                             1 while the weights are in memory
    genlab_cold_starts_total                        model loads (the first, and every reload after an idle unload)
    genlab_cold_start_seconds                       how long each load took (histogram: _sum / _count)
    genlab_jobs{status}                             async jobs by status
    genlab_forward_passes_total                     forward passes of the generator (prefills and decode steps)
    genlab_forward_rows_total                       rows summed over them: rows / passes is the mean batch size
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
COLD_START_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("genlab_requests", "Requests answered.", ["route", "method", "status"], registry=r)
        self.latency = Histogram("genlab_request_seconds", "Request latency.", ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("genlab_requests_in_flight", "Requests being answered now.", registry=r)
        self.prompt_tokens = Counter("genlab_prompt_tokens", "Prompt tokens read.", ["model"], registry=r)
        self.completion_tokens = Counter("genlab_completion_tokens", "Tokens generated.", ["model"], registry=r)
        self.queue_depth = Gauge("genlab_queue_depth", "Rows waiting for a place in the batch.", registry=r)
        self.model_loaded = Gauge("genlab_model_loaded", "1 while the model weights are in memory.", registry=r)
        self.cold_starts = Counter("genlab_cold_starts", "Model loads (first load and reloads).", registry=r)
        self.totals = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}  # for the lineage run at shutdown
        self.cold_start_seconds = Histogram(
            "genlab_cold_start_seconds", "Seconds each model load took.", buckets=COLD_START_BUCKETS, registry=r
        )

    def watch(self, queue_depth: Callable[[], int], loaded: Callable[[], bool]) -> None:
        self.queue_depth.set_function(lambda: float(queue_depth()))
        self.model_loaded.set_function(lambda: 1.0 if loaded() else 0.0)

    def watch_jobs(self, counts: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_JobsCollector(counts))

    def watch_batches(self, decode_stats: Callable[[], tuple[int, int]]) -> None:
        self.registry.register(_BatchCollector(decode_stats))

    def count_tokens(self, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        self.prompt_tokens.labels(model).inc(prompt_tokens)
        self.completion_tokens.labels(model).inc(completion_tokens)
        self.totals["prompt_tokens"] += prompt_tokens
        self.totals["completion_tokens"] += completion_tokens

    def cold_start(self, seconds: float) -> None:
        self.cold_starts.inc()
        self.cold_start_seconds.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _JobsCollector:
    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def collect(self):  # noqa: ANN201 - prometheus-client's collector protocol
        family = GaugeMetricFamily("genlab_jobs", "Async jobs by status.", labels=["status"])
        for status, count in self._counts().items():
            family.add_metric([status], count)
        yield family

    def describe(self):  # noqa: ANN201 - so registering does not call collect (the store may be slow)
        return [GaugeMetricFamily("genlab_jobs", "Async jobs by status.", labels=["status"])]


class _BatchCollector:
    def __init__(self, decode_stats: Callable[[], tuple[int, int]]) -> None:
        self._stats = decode_stats

    def collect(self):  # noqa: ANN201 - prometheus-client's collector protocol
        passes, rows = self._stats()
        yield CounterMetricFamily("genlab_forward_passes", "Forward passes of the generator.", value=passes)
        yield CounterMetricFamily("genlab_forward_rows", "Rows summed over the forward passes.", value=rows)

    def describe(self):  # noqa: ANN201
        return [CounterMetricFamily("genlab_forward_passes", "", value=0), CounterMetricFamily("genlab_forward_rows", "", value=0)]


class RequestMetricsMiddleware:
    """Count every HTTP request by its route template and status, and time it to its last byte."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.in_flight.dec()
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(route, scope.get("method", ""), str(status)).inc()
            self.metrics.totals["requests"] += 1
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
