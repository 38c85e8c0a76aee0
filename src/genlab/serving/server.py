"""Run the app with uvicorn: what ``genlab serve`` does after building the app, importable."""

from __future__ import annotations

from fastapi import FastAPI

from genlab.serving.config import ServeConfig


def base_url(config: ServeConfig) -> str:
    host = config.host
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    return f"http://{shown}:{config.port}"


def run_server(app: FastAPI, config: ServeConfig, *, log_level: str = "info") -> None:
    """Serve ``app`` on ``config.host:config.port`` until interrupted (Ctrl-C, SIGTERM)."""
    import uvicorn

    uvicorn.run(app, host=config.host, port=config.port, log_level=log_level, timeout_graceful_shutdown=10)
