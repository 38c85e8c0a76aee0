"""API keys: with ``--api-key`` (or ``GENLAB_API_KEY``) set, every protected route needs ``Authorization: Bearer KEY``.

``/health`` (which then only says the server is up, unless the caller has the key) and the playground
page (``/``, static HTML that asks for the key itself) stay open.
Keys are compared in constant time (``secrets.compare_digest``).
"""

from __future__ import annotations

import secrets

from fastapi import Request

from genlab.serving.api_errors import ApiError


def require_api_key(request: Request) -> None:
    """FastAPI dependency: a 401 unless the request carries the server's key (if it has one)."""
    expected: str | None = request.app.state.serving.config.api_key
    if expected is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(401, "this server needs an API key: send the header 'Authorization: Bearer KEY'.", code="missing_api_key")
    if not secrets.compare_digest(given.strip().encode(), expected.encode()):
        raise ApiError(401, "the API key given is not this server's.", code="invalid_api_key")


def has_api_key(request: Request) -> bool:
    """Whether the request may see what the key protects (always, when the server has no key)."""
    try:
        require_api_key(request)
    except ApiError:
        return False
    return True
