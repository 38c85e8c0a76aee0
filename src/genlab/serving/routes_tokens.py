"""vLLM's tokenizer endpoints: ``POST /tokenize``, ``POST /detokenize``, ``GET /tokenizer_info``.

Same paths and bodies as vLLM's OpenAI-compatible server, so clients written for it work here; in
particular lm-evaluation-harness's ``tokenizer_backend=auto`` probes ``/tokenizer_info`` and
``/tokenize`` and then encodes and decodes through the server instead of loading a tokenizer itself::

    POST /tokenize    {"prompt": "Hello", "add_special_tokens": true, "return_token_strs": false}
                   or {"messages": [...], "add_generation_prompt": true, "add_special_tokens": false}
                   -> {"count": 2, "max_model_len": 8192, "tokens": [...], "token_strs": null}
    POST /detokenize  {"tokens": [...]} -> {"prompt": "Hello"}
    GET  /tokenizer_info -> {"tokenizer_class", "eos_token", "bos_token", "pad_token", "chat_template", ...}

``model`` is optional (the base and its adapters share one tokenizer). They need the API key, as the
``/v1`` routes do, and a backend that offers token prompts (genlab's own); others answer a 400.
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from genlab.serving.api_errors import ApiError
from genlab.serving.auth import require_api_key
from genlab.serving.backend import TokenBackend
from genlab.serving.protocol import ChatMessage, Text
from genlab.serving.responses import ErrorResponse
from genlab.serving.state import ServerState

router = APIRouter(dependencies=[Depends(require_api_key)], responses={400: {"model": ErrorResponse}})


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: Text | None = None
    prompt: Text | None = None
    messages: list[ChatMessage] | None = None
    add_special_tokens: bool | None = None  # None: True for a prompt, False for messages (the template has them)
    add_generation_prompt: bool = True
    return_token_strs: bool = False


class TokenizeResponse(BaseModel):
    count: int
    max_model_len: int
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: Text | None = None
    tokens: list[int] = Field(description="Token ids to turn back into text.")


class DetokenizeResponse(BaseModel):
    prompt: str


def _backend(request: Request, model: str | None) -> tuple[ServerState, Any]:
    state: ServerState = request.app.state.serving
    backend = state.backend
    if not isinstance(backend, TokenBackend):
        raise ApiError(400, f"this server's {backend.name} backend does not offer its tokenizer.", code="unsupported_endpoint")
    if model is not None and model not in backend.models():
        raise ApiError(404, f"the model {model!r} does not exist on this server (it has: {', '.join(backend.models())}).",
                       param="model", code="model_not_found")  # fmt: skip
    return state, backend


@router.post("/tokenize", response_model=TokenizeResponse)
async def tokenize(body: TokenizeRequest, request: Request) -> dict[str, Any]:
    state, backend = _backend(request, body.model)
    if (body.prompt is None) == (body.messages is None):
        raise ApiError(400, "give either prompt (a text) or messages (a conversation) to tokenize.", param="prompt")

    def run() -> dict[str, Any]:
        if body.messages is not None:
            messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in body.messages]
            text = backend.format_chat(messages)
            special = bool(body.add_special_tokens)
        else:
            text, special = body.prompt, body.add_special_tokens is not False
        ids = backend.tokenize(text, add_special_tokens=special)
        strs = [piece for piece, _ in backend.token_pieces(ids)] if body.return_token_strs else None
        return {"count": len(ids), "max_model_len": int(backend.context_window), "tokens": ids, "token_strs": strs}

    return await anyio.to_thread.run_sync(run, limiter=state.waiters)


@router.post("/detokenize", response_model=DetokenizeResponse)
async def detokenize(body: DetokenizeRequest, request: Request) -> dict[str, Any]:
    state, backend = _backend(request, body.model)
    bad = [token for token in body.tokens if not 0 <= token < backend.vocab_size]
    if bad:
        raise ApiError(400, f"token id {bad[0]} is not in the model's vocabulary of {backend.vocab_size} tokens.", param="tokens")
    text = await anyio.to_thread.run_sync(lambda: backend.detokenize(body.tokens, skip_special_tokens=False), limiter=state.waiters)
    return {"prompt": text}


@router.get("/tokenizer_info")
def tokenizer_info(request: Request) -> dict[str, Any]:
    _, backend = _backend(request, None)
    tokenizer = getattr(backend, "tokenizer", None)
    return {
        "tokenizer_class": type(tokenizer).__name__ if tokenizer is not None else None,
        "eos_token": getattr(tokenizer, "eos_token", None),
        "bos_token": getattr(tokenizer, "bos_token", None),
        "pad_token": getattr(tokenizer, "pad_token", None),
        "unk_token": getattr(tokenizer, "unk_token", None),
        "chat_template": getattr(tokenizer, "chat_template", None),
        "model_max_length": int(backend.context_window),
        "vocab_size": int(backend.vocab_size),
    }
