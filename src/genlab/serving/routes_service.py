"""The server's own routes: ``/health`` (open; details behind the key), ``/metrics`` (Prometheus), ``/`` (the playground page)."""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from genlab.serving.auth import has_api_key, require_api_key
from genlab.serving.state import ServerState

router = APIRouter()


@router.get("/health")
def health(request: Request) -> dict[str, Any]:
    """Liveness for anyone; what is served and how busy it is only for a caller the key lets in."""
    state: ServerState = request.app.state.serving
    if state.config.api_key is not None and not has_api_key(request):
        return {"status": "ok"}
    return {
        "status": "ok",
        "backend": state.backend.name,
        "models": state.backend.models(),
        "model_loaded": state.backend.loaded,
        "queue_depth": int(getattr(state.backend, "queue_depth", 0)),
        "requests_in_flight": state.limiter.active,
    }


@router.get("/metrics", dependencies=[Depends(require_api_key)], response_class=Response)
def metrics(request: Request) -> Response:
    state: ServerState = request.app.state.serving
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def playground() -> HTMLResponse:
    page = resources.files("genlab.serving").joinpath("static", "playground.html")
    if not page.is_file():
        return HTMLResponse("<!doctype html><title>genlab</title><p>The playground page is not installed.</p>")
    return HTMLResponse(page.read_text(encoding="utf-8"))
