"""Errors as OpenAI sends them: ``{"error": {"message", "type", "param", "code"}}`` with the right status.

Every error a client can cause is a 4xx with one sentence saying what is wrong: bad JSON and invalid
fields (400, FastAPI's validation turned into OpenAI's shape), unknown model (404), a prompt that
does not fit the context window (400, ``context_length_exceeded``), no or wrong API key (401), a body
too large (413), too many requests in flight (429). Anything else is a bug: 500, logged with its
traceback, and the client sees a generic sentence.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from genlab.errors import GenlabError, InvalidValueError, ModelNotFoundError, PromptTooLongError

log = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error",
    404: "invalid_request_error", 405: "invalid_request_error", 413: "invalid_request_error",
    429: "rate_limit_error", 500: "server_error", 503: "server_error",
}  # fmt: skip


class ApiError(Exception):
    """An error to send to the client as it is."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None, type: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or _TYPES.get(status, "invalid_request_error")

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_response(status: int, message: str, *, param: str | None = None, code: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, _TYPES.get(status, "invalid_request_error"), param, code), status_code=status)


def from_genlab_error(error: GenlabError) -> ApiError:
    """A library error (a user's mistake) as the API error a client understands."""
    if isinstance(error, ModelNotFoundError):
        return ApiError(404, str(error), param="model", code="model_not_found")
    if isinstance(error, PromptTooLongError):
        return ApiError(400, str(error), param="messages", code="context_length_exceeded")
    if isinstance(error, InvalidValueError):
        return ApiError(400, str(error), code="invalid_value")
    return ApiError(400, str(error))


def first_error(errors: Sequence[Any]) -> dict[str, Any]:
    """The error to report of pydantic's list: a value check that failed (it says most) before a type
    mismatch, which a union field reports once per member it could have been."""
    errors = list(errors) or [{"msg": "invalid request", "loc": (), "type": ""}]
    return next((e for e in errors if e.get("type") == "value_error"), errors[0])


def error_message(error: dict[str, Any]) -> str:
    """What is wrong with the field, as the end of a sentence."""
    if error.get("type") == "string_unicode":  # pydantic's words for a lone surrogate in a plain str field
        return "it contains a lone surrogate, which is not text: send valid Unicode"
    return str(error.get("msg", "invalid value")).removeprefix("Value error, ")


def field_path(loc: Sequence[Any]) -> str:
    """A dotted field name (``messages.0.content``) from pydantic's ``loc``, without the body and union tags."""
    return ".".join(str(part) for part in loc if part != "body" and not (isinstance(part, str) and "[" in part))


def _validation_message(error: RequestValidationError) -> tuple[str, str | None, str]:
    first = first_error(error.errors())
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON.", None, "invalid_json"
    param = field_path(first.get("loc", ())) or None
    message = error_message(first)
    if param is None and first.get("type") in ("model_attributes_type", "dict_type"):
        return "the request body must be a JSON object.", None, "invalid_request"
    if param is None:
        return f"the request body is not allowed: {message}.", None, "invalid_request"
    if first.get("type") == "missing":
        return f"{param} is required.", param, "missing_field"
    return f"{param} is not allowed: {message}.", param, "invalid_value"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(GenlabError)
    async def _genlab_error(request: Request, error: GenlabError) -> JSONResponse:
        api = from_genlab_error(error)
        return JSONResponse(api.body(), status_code=api.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        message, param, code = _validation_message(error)
        return error_response(400, message, param=param, code=code)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = error.detail if isinstance(error.detail, str) else "request failed"
        if error.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path} on this server."
        elif error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}."
        return JSONResponse(
            error_body(message, _TYPES.get(error.status_code, "invalid_request_error")),
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _bug(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "the server failed to answer this request (see its log).", code="internal_error")
