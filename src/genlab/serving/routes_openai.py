"""OpenAI's endpoints: ``/v1/completions``, ``/v1/chat/completions``, ``/v1/embeddings``.

Each generation request takes one place in the concurrency limit per row it decodes (prompts × n;
429 when they are not free) for as long as it runs. A client that goes away cancels its rows in the
batch and frees its places: for a stream, when its next event cannot be sent; otherwise when the
server, which watches the connection while the answer is generated, sees it close. Blocking work
(tokenising, loading, waiting for the answer) runs in worker threads.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from genlab.errors import InvalidValueError
from genlab.serving import completions
from genlab.serving.api_errors import ApiError
from genlab.serving.auth import require_api_key
from genlab.serving.embeddings import embedding_body
from genlab.serving.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from genlab.serving.responses import ChatCompletion, Completion, EmbeddingList, ErrorResponse
from genlab.serving.state import ServerState

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 429)
}
MAX_EMBEDDING_INPUTS = 2048  # OpenAI's limit per request

router = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)], responses=ERRORS)


def _state(request: Request) -> ServerState:
    return request.app.state.serving


DISCONNECT_POLL_SECONDS = 0.25  # how often a non-streaming request looks for its client having left
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a request whose client left (counted in the metrics)


@router.post("/completions", response_model=Completion)
async def create_completion(body: CompletionRequest, request: Request) -> Any:
    state = _state(request)
    rows = completions.check_rows(state, body)  # a 400 for too many rows, before asking for places
    return await _generate(state, lambda: completions.prepare_completion(state, body), body.stream, rows, request)


@router.post("/chat/completions", response_model=ChatCompletion)
async def create_chat_completion(body: ChatCompletionRequest, request: Request) -> Any:
    state = _state(request)
    rows = completions.check_rows(state, body)
    return await _generate(state, lambda: completions.prepare_chat(state, body), body.stream, rows, request)


class _Closer:
    """Release a request's place and the model once, when its stream ends or is dropped unstarted."""

    def __init__(self, *actions: Callable[[], None]) -> None:
        self._actions = list(actions)
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            actions, self._actions = self._actions, []
        for action in actions:
            action()

    def __del__(self) -> None:
        self()


async def _generate(
    state: ServerState, prepare: Callable[[], completions.Prepared], stream: bool, rows: int, request: Request
) -> Any:
    state.limiter.acquire(rows)
    handed_over = False  # a stream keeps its places until it ends; anything else gives them back here
    try:
        prepared = await anyio.to_thread.run_sync(prepare)
        if not stream:
            try:
                body = await _run_while_connected(state, prepared, request.is_disconnected)
            except completions.RequestCancelled:
                return Response(status_code=CLIENT_CLOSED_REQUEST)  # nobody is there to read it
            return JSONResponse(body)
        handles = await anyio.to_thread.run_sync(_start_stream, state, prepared)
        closer = _Closer(state.lifecycle.end, lambda: state.limiter.release(rows))
        events = completions.stream(state, prepared, handles, closer)
        handed_over = True
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
    finally:
        if not handed_over:
            state.limiter.release(rows)


async def _run_while_connected(
    state: ServerState, prepared: completions.Prepared, disconnected: Callable[[], Awaitable[bool]]
) -> Any:
    """``completions.run`` in a worker thread, cancelled (rows out of the batch) if the client goes away first."""
    cancel = threading.Event()

    async def watch() -> None:
        while not await disconnected():
            await anyio.sleep(DISCONNECT_POLL_SECONDS)
        cancel.set()

    error: Exception | None = None
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(watch)
        try:
            body = await anyio.to_thread.run_sync(completions.run, state, prepared, cancel, limiter=state.waiters)
        except Exception as raised:  # raised after the group, unwrapped: a task group would wrap it in an ExceptionGroup
            error = raised
        finally:
            tasks.cancel_scope.cancel()
    if error is not None:
        raise error
    return body


def _start_stream(state: ServerState, prepared: completions.Prepared) -> list[Any]:
    state.lifecycle.begin()
    try:
        return completions.submit(state, prepared)
    except BaseException:
        state.lifecycle.end()
        raise


@router.post("/embeddings", response_model=EmbeddingList)
async def create_embeddings(body: EmbeddingRequest, request: Request) -> Any:
    state = _state(request)
    if body.model != state.embeddings.model_id:
        raise ApiError(404, f"the embedding model {body.model!r} does not exist on this server "
                       f"(it has {state.embeddings.model_id!r}).", param="model", code="model_not_found")  # fmt: skip
    texts = body.texts()
    if len(texts) > MAX_EMBEDDING_INPUTS:
        raise ApiError(400, f"input has {len(texts)} texts: at most {MAX_EMBEDDING_INPUTS} are allowed.", param="input")
    with state.limiter.place():
        try:
            texts = await anyio.to_thread.run_sync(state.embeddings.texts_of, texts, limiter=state.waiters)
        except InvalidValueError as error:
            raise ApiError(400, str(error), param="input") from None
        vectors, tokens = await anyio.to_thread.run_sync(state.embeddings.embed, texts, limiter=state.waiters)
    return JSONResponse(embedding_body(body.model, vectors, tokens, body.encoding_format, body.dimensions))
