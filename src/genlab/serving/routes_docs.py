"""The API's description: ``/openapi.json``, ``/docs`` (Swagger UI) and ``/redoc``.

With no API key set, the server is open and so are these. With a key, they describe what the key
protects, so they need it too (``Authorization: Bearer KEY``: an OpenAPI client or schemathesis sends
it; a browser does not, so open them with ``genlab serve --public-docs`` to read them there).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from genlab.serving.auth import require_api_key

OPENAPI_URL = "/openapi.json"


def require_docs_access(request: Request) -> None:
    """FastAPI dependency: the key's 401, unless the docs are public (``--public-docs``)."""
    if not request.app.state.serving.config.public_docs:
        require_api_key(request)


router = APIRouter(dependencies=[Depends(require_docs_access)], include_in_schema=False)


@router.get(OPENAPI_URL)
def openapi(request: Request) -> Any:
    return JSONResponse(request.app.openapi())


@router.get("/docs", response_class=HTMLResponse)
def swagger(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} - API")


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} - API")
