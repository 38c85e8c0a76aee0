"""`genlab serve`: an OpenAI-compatible server for a model and its adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from genlab.cli.output import err_console


def serve_command(
    model: Annotated[str, typer.Option(help="Pack name, model folder or GGUF file.")] = "smollm2-135m-instruct",
    adapter: Annotated[
        list[str] | None, typer.Option(help="NAME=PATH: serve an adapter as the model id NAME (repeatable).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    api_key: Annotated[
        str | None, typer.Option(help="Require 'Authorization: Bearer KEY' (default: $GENLAB_API_KEY, else none).")
    ] = None,
    idle_unload: Annotated[
        float | None, typer.Option(help="Free the model after this many idle seconds; reload on the next request.")
    ] = None,
    max_batch: Annotated[int, typer.Option(help="Requests decoded together (dynamic batching).")] = 8,
    threads: Annotated[
        int | None, typer.Option(help="torch threads for generation (default: one per core; 1 can win on a busy machine).")
    ] = None,
    lanes: Annotated[
        int | None,
        typer.Option(help="onnxruntime-genai: engines side by side, one thread each (default: one per thread; 1 loads the model once)."),
    ] = None,
    batching: Annotated[bool, typer.Option("--batching/--no-batching", help="--no-batching: one request at a time.")] = True,
    max_concurrent: Annotated[
        int, typer.Option(help="Rows in flight (one per prompt and choice, over all requests) before answering 429.")
    ] = 256,
    max_request_rows: Annotated[int, typer.Option(help="The most rows (prompts × n) one request or job may ask for.")] = 64,
    max_tokens_limit: Annotated[int, typer.Option(help="The most tokens one request may ask for.")] = 2048,
    jobs_db: Annotated[Path | None, typer.Option(help="SQLite file of async jobs (default: $GENLAB_HOME/jobs.sqlite).")] = None,
    job_workers: Annotated[int, typer.Option(help="Threads running async jobs.")] = 2,
    job_max_attempts: Annotated[
        int, typer.Option(help="Fail a job, instead of running it again, once the server stopped this many times while it ran.")
    ] = 2,
    public_docs: Annotated[
        bool, typer.Option("--public-docs", help="With an API key: serve /docs and /openapi.json without the key.")
    ] = False,
    adapter_root: Annotated[
        Path | None, typer.Option(help="Allow POST /v1/load_lora_adapter to load adapters from folders under this one.")
    ] = None,
    backend: Annotated[
        str, typer.Option(help="genlab (default; adapters, soft prompts), onnxruntime-genai (fastest for a merged model on CPU, int8), ctranslate2 (int8), llama.cpp or vllm.")
    ] = "genlab",
    embedder: Annotated[str | None, typer.Option(help="Model of /v1/embeddings (default: the MiniLM pack).")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level: debug, info, warning, error.")] = "info",
) -> None:
    """Serve a model (and adapters) behind an OpenAI-compatible API, with a playground at /."""
    from genlab.serving.app import create_app
    from genlab.serving.config import ServeConfig
    from genlab.serving.server import base_url, run_server

    config = ServeConfig.from_cli(
        adapters=adapter, api_key=api_key, model=model, host=host, port=port, idle_unload=idle_unload,
        max_batch=max_batch, threads=threads, lanes=lanes, batching=batching, max_concurrent=max_concurrent, max_tokens_limit=max_tokens_limit,
        max_request_rows=max_request_rows, jobs_db=jobs_db, job_workers=job_workers, job_max_attempts=job_max_attempts,
        public_docs=public_docs, backend=backend, embedder=embedder, adapter_root=adapter_root,
    )  # fmt: skip
    with err_console.status(f"loading {model}"):
        app = create_app(config)
    url = base_url(config)
    state = app.state.serving
    typer.echo(f"genlab serve: {url}  (OpenAI base URL {url}/v1, playground {url}/)", err=False)
    typer.echo(f"models: {', '.join(state.backend.models())}; embeddings: {state.embeddings.model_id}")
    batching = f"up to {config.batch_size} requests" if config.batch_size > 1 else "off"
    if config.backend not in ("genlab", "onnxruntime-genai", "ctranslate2"):
        batching = f"as {config.backend} does it"
    typer.echo(f"backend: {config.backend}; batching: {batching}; API key: {'required' if config.api_key else 'none'}")
    if config.adapter_root is not None:
        typer.echo(f"adapters load at run time (POST /v1/load_lora_adapter) from folders under {config.adapter_root}")
    run_server(app, config, log_level=log_level)
