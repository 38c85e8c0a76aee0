"""Asynchronous inference: ``POST /v1/jobs`` queues a chat or completion request, ``GET /v1/jobs/{id}`` reports it.

A job body is ``{"kind": "chat.completions" | "completions", "request": {...}}``, the request being
what ``/v1/chat/completions`` or ``/v1/completions`` takes (without ``stream``). It is checked when
submitted, exactly as the real-time route checks it (a bad one is a 400/404 at once, never a queued
failure), then stored in SQLite (:mod:`genlab.serving.jobs`) with its seed fixed if it samples, so a
job rerun after a crash gives the same answer. Worker threads run jobs through the same code as the
real-time routes (:func:`run_job`), so jobs share the batch with real-time requests.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from genlab.errors import GenlabError
from genlab.serving import completions
from genlab.serving.api_errors import ApiError, error_message, field_path, first_error
from genlab.serving.auth import require_api_key
from genlab.serving.protocol import ChatCompletionRequest, CompletionRequest
from genlab.serving.responses import ErrorResponse
from genlab.serving.state import ServerState

JobKind = Literal["chat.completions", "completions"]
_REQUESTS: dict[str, type[ChatCompletionRequest] | type[CompletionRequest]] = {
    "chat.completions": ChatCompletionRequest,
    "completions": CompletionRequest,
}

router = APIRouter(
    prefix="/v1", dependencies=[Depends(require_api_key)],
    responses={code: {"model": ErrorResponse} for code in (400, 401, 404, 413)},
)  # fmt: skip


class JobSubmission(BaseModel):
    kind: JobKind
    request: dict[str, Any]


class JobAccepted(BaseModel):
    id: str
    object: Literal["job"] = "job"
    status: Literal["queued"] = "queued"


class JobStatus(BaseModel):
    id: str
    object: Literal["job"] = "job"
    kind: str
    status: Literal["queued", "running", "completed", "failed"]
    result: dict[str, Any] | None
    error: str | None
    created_at: float
    finished_at: float | None
    attempts: int


def parse_job_request(kind: str, body: dict[str, Any]) -> ChatCompletionRequest | CompletionRequest:
    """The job's request as the real-time route would read it; a 400 naming the bad field otherwise."""
    try:
        request = _REQUESTS[kind].model_validate(body)
    except ValidationError as error:
        first = first_error(error.errors())
        where = ".".join(["request", field_path(first["loc"])]).rstrip(".")
        message = error_message(first)
        raise ApiError(400, f"{where} is not allowed: {message}.", param=where, code="invalid_value") from None
    if request.stream:
        raise ApiError(400, "request.stream is not allowed: a job's answer is fetched with GET /v1/jobs/{id}.",
                       param="request.stream")  # fmt: skip
    return request


def prepare_job(state: ServerState, kind: str, body: dict[str, Any]) -> completions.Prepared:
    request = parse_job_request(kind, body)
    if isinstance(request, ChatCompletionRequest):
        return completions.prepare_chat(state, request)
    return completions.prepare_completion(state, request)


def run_job(state: ServerState, kind: str, body: dict[str, Any], cancel: threading.Event | None = None) -> dict[str, Any]:
    """The jobs worker's handler: the same checks and generation as the real-time route.

    The checks run again here, so a job queued before a limit was lowered (or in an older store) fails
    with the reason instead of running; ``cancel`` (the server shutting down) cuts it short.
    """
    try:
        return completions.run(state, prepare_job(state, kind, body), cancel)
    except ApiError as error:  # stored as the job's one-line reason
        raise GenlabError(error.message) from None


def _store(state: ServerState) -> Any:
    if state.jobs is None:
        raise ApiError(503, "the job store is not open (the server is starting or stopping).", code="jobs_unavailable")
    return state.jobs


@router.post("/jobs", status_code=202, response_model=JobAccepted)
async def submit_job(submission: JobSubmission, request: Request) -> Any:
    state: ServerState = request.app.state.serving
    store = _store(state)
    await anyio.to_thread.run_sync(prepare_job, state, submission.kind, submission.request)  # 4xx now, not later
    job_id = await anyio.to_thread.run_sync(store.submit, submission.kind, submission.request)
    return JSONResponse({"id": job_id, "object": "job", "status": "queued"}, status_code=202)


@router.get("/jobs/{job_id}", response_model=JobStatus)
async def get_job(job_id: str, request: Request) -> Any:
    store = _store(request.app.state.serving)
    job = await anyio.to_thread.run_sync(store.get, job_id)
    if job is None:
        raise ApiError(404, f"no job with id {job_id!r}.", param="job_id", code="job_not_found")
    return {
        "id": job.id, "object": "job", "kind": job.kind, "status": job.status, "result": job.result, "error": job.error,
        "created_at": job.created_at, "finished_at": job.finished_at, "attempts": job.attempts,
    }  # fmt: skip
