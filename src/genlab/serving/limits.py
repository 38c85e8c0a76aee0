"""Limits that keep one client from taking the server: body size (413) and requests in flight (429).

:class:`BodySizeLimit` is ASGI middleware: it refuses a request whose ``Content-Length`` is above the
limit before reading it, and stops reading a body sent without one (chunked) as soon as it passes
the limit. :class:`ConcurrencyLimit` counts the places taken by requests being answered — a
generation request takes one per row it decodes (prompts × n), an embedding request one — and refuses
a request when its places are not free: a client should back off and retry, as it would on OpenAI's
429, instead of queueing without bound.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genlab.serving.api_errors import ApiError, error_response


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        # Read the whole body first (requests are small JSON), counting; then hand it on unchanged.
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, f"the request body is larger than this server accepts ({self.max_bytes} bytes).", code="payload_too_large"
        )
        await response(scope, receive, send)


class ConcurrencyLimit:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._active = 0
        self._lock = threading.Lock()

    @property
    def active(self) -> int:
        return self._active

    def acquire(self, places: int = 1) -> None:
        """Take ``places`` (a request's rows), or raise a 429 :class:`ApiError` when they are not free."""
        with self._lock:
            if self._active + places > self.limit:
                raise ApiError(
                    429,
                    f"this server has {self._active} of its {self.limit} places taken (its --max-concurrent, "
                    f"one place per prompt and choice) and this request needs {places}: retry shortly.",
                    code="too_many_requests",
                )
            self._active += places

    def release(self, places: int = 1) -> None:
        with self._lock:
            self._active -= places

    @contextlib.contextmanager
    def place(self, places: int = 1) -> Iterator[None]:
        self.acquire(places)
        try:
            yield
        finally:
            self.release(places)
