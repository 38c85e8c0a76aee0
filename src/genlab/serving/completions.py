"""From an OpenAI request to generated text and back: the one code path of real-time and async requests.

``prepare_chat`` / ``prepare_completion`` check a request against the server's limits and the model's
window (raising :class:`ApiError` 4xx) and turn it into prompts and :class:`GenerationSettings`;
``run`` submits it to the backend and waits for the OpenAI response body (or, when its ``cancel``
event is set -- the client went away, the server is stopping -- cancels the rows and raises
:class:`RequestCancelled`); ``stream`` yields the same
answer as server-sent events in OpenAI's chunk format, ending with ``data: [DONE]``. ``/v1/jobs``
handlers call ``prepare_*`` and ``run`` exactly as the real-time routes do.

Mapping of OpenAI's parameters: ``max_tokens`` (or ``max_completion_tokens``) -> ``max_new_tokens``
(a chat request without it gets what fits in the window, up to ``--max-tokens-limit``);
``temperature`` (default 1.0, as OpenAI's; 0 is greedy), ``top_p``, ``n`` ->
``num_return_sequences``, ``stop``, ``seed``; extensions ``top_k`` and ``repetition_penalty``;
``logit_bias``, ``frequency_penalty``, ``presence_penalty`` as they are; chat ``logprobs`` /
``top_logprobs`` and completions ``logprobs: k`` -> ``logprobs`` (log-probabilities of the raw model
distribution, before bias, penalties and sampling warpers: :mod:`genlab.generation.logprobs`);
completions ``echo`` -> the prompt returned before the answer, scored (``prompt_logprobs``) when
``logprobs`` is set, and ``max_tokens: 0`` with ``echo`` scores the prompt without generating (what
lm-evaluation-harness's log-likelihood requests send). A prompt may be token ids. Optional fields
(:data:`genlab.serving.backend.FEATURES`) that the backend does not honour are a 400 naming the field.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from genlab.errors import GenlabError
from genlab.generation.settings import GenerationSettings
from genlab.serving.api_errors import ApiError, from_genlab_error
from genlab.serving.backend import GenerationHandle, GenerationResult
from genlab.serving.logprobs_format import StreamedLogprobs, chat_logprobs, echoed_choice
from genlab.serving.optional_fields import check_features, check_token_ids, logit_bias
from genlab.serving.protocol import ChatCompletionRequest, CompletionRequest
from genlab.serving.state import ServerState
from genlab.serving.structured import shape_chat
from genlab.serving.tools import ToolStream, assistant_message

Kind = Literal["chat", "completion"]
log = logging.getLogger(__name__)
CANCEL_POLL_SECONDS = 0.1  # how often a waiting request looks at its cancel event


class RequestCancelled(Exception):
    """The request was cancelled while it waited for its answer (its rows left the batch)."""


@dataclass
class Prepared:
    """A checked request: what to generate, for which model id, with which settings."""

    kind: Kind
    model: str
    prompts: list[str | list[int]]  # text, or token ids
    formatted: bool  # the prompts are chat-template output (they carry their own special tokens)
    settings: GenerationSettings
    prompt_tokens: list[int]
    include_usage: bool = False
    echo: bool = False  # completions: the prompt comes back before the answer
    pieces: Any = None  # token ids -> [(text, bytes)] (the backend's token_pieces), when log-probabilities are asked
    detokenize: Any = None  # token ids -> text with special tokens (echo of a token prompt)
    constraint: Any = None  # chat: a new grammar constraint per row (genlab.serving.structured), or None
    tools: Any = None  # chat: the ToolPlan its answers are parsed with (genlab.serving.tools), or None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def response_id(self) -> str:
        return ("chatcmpl-" if self.kind == "chat" else "cmpl-") + self.id


# --- checking ----------------------------------------------------------------------------------------


def _check_common(state: ServerState, request: ChatCompletionRequest | CompletionRequest) -> None:
    refused = request.unsupported()
    if refused is not None:
        raise ApiError(400, refused[1], param=refused[0], code="unsupported_parameter")
    if request.model not in state.backend.models():
        known = ", ".join(state.backend.models())
        raise ApiError(404, f"the model {request.model!r} does not exist on this server (it has: {known}).",
                       param="model", code="model_not_found")  # fmt: skip
    if request.n > state.config.max_n:
        raise ApiError(400, f"n={request.n} is more than this server allows ({state.config.max_n}).", param="n")
    check_features(state.backend, request)


def request_rows(request: ChatCompletionRequest | CompletionRequest) -> int:
    """Rows the request decodes: one per prompt and choice."""
    prompts = len(request.prompts()) if isinstance(request, CompletionRequest) else 1
    return prompts * request.n


def check_rows(state: ServerState, request: ChatCompletionRequest | CompletionRequest) -> int:
    """The request's rows; a 400 naming the limit when prompts × n is more than one request may ask for."""
    rows = request_rows(request)
    limit, flag = state.config.request_rows_limit
    if rows > limit:
        prompts = len(request.prompts()) if isinstance(request, CompletionRequest) else 1
        raise ApiError(
            400,
            f"this request asks for {prompts} prompt(s) × n={request.n} = {rows} rows, more than this server "
            f"allows in one request ({limit}, its {flag}): split it into smaller requests.",
            param="prompt" if prompts > 1 else "n",
            code="too_many_rows",
        )
    return rows


def _window(state: ServerState, model: str) -> int:
    window_for = getattr(state.backend, "window_for", None)
    return int(window_for(model)) if window_for is not None else int(state.backend.context_window)


def _max_new_tokens(
    state: ServerState, model: str, wanted: int | None, prompt_tokens: int, param: str, prompt_param: str
) -> int:
    """The tokens to generate: ``wanted`` checked against the server's cap and the window, or what fits."""
    limit = state.config.max_tokens_limit
    window = _window(state, model)
    if wanted is not None and wanted > limit:
        raise ApiError(400, f"{param}={wanted} is more than this server allows ({limit}).", param=param,
                       code="max_tokens_too_large")  # fmt: skip
    room = window - prompt_tokens
    if room < (0 if wanted == 0 else 1) or (wanted is not None and wanted > room):
        asked = f" and {param}={wanted}" if wanted is not None else ""
        raise ApiError(
            400,
            f"this model's context window is {window} tokens, and the prompt has {prompt_tokens} tokens{asked}: "
            f"{'it leaves no room for an answer' if room < 1 else f'{prompt_tokens} + {wanted} exceeds it'}.",
            param=prompt_param if wanted is None else param,
            code="context_length_exceeded",
        )
    return wanted if wanted is not None else min(limit, room)


def _settings(
    request: ChatCompletionRequest | CompletionRequest,
    max_new_tokens: int,
    bias: dict[int, float],
    *,
    logprobs: int | None = None,
    prompt_logprobs: int | None = None,
) -> GenerationSettings:
    temperature = 1.0 if request.temperature is None else request.temperature
    if temperature == 0.0 and request.n > 1:
        raise ApiError(400, f"n={request.n} needs sampling: with temperature 0 every answer is the same.", param="n")
    try:
        return GenerationSettings(
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=1.0 if request.top_p is None else request.top_p,
            top_k=request.top_k or 0,
            repetition_penalty=1.0 if request.repetition_penalty is None else request.repetition_penalty,
            stop=request.stop_list(),
            seed=request.seed,
            num_return_sequences=request.n,
            logit_bias=bias,
            frequency_penalty=request.frequency_penalty or 0.0,
            presence_penalty=request.presence_penalty or 0.0,
            logprobs=logprobs,
            prompt_logprobs=prompt_logprobs,
        )
    except GenlabError as error:
        raise from_genlab_error(error) from None


def prepare_chat(state: ServerState, request: ChatCompletionRequest) -> Prepared:
    _check_common(state, request)
    check_rows(state, request)
    try:
        shape = shape_chat(state.backend, request)  # tools rendered, response_format compiled
        prompt = shape.prompt
    except GenlabError as error:
        api = from_genlab_error(error)
        api.param = api.param or "messages"
        raise api from None
    tokens = state.backend.count_tokens(prompt, formatted=True)
    wanted = request.wanted_tokens()
    param = "max_completion_tokens" if request.max_completion_tokens is not None else "max_tokens"
    max_new = _max_new_tokens(state, request.model, wanted, tokens, param, "messages")
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    settings = _settings(request, max_new, logit_bias(state.backend, request), logprobs=request.logprobs_wanted())
    prepared = Prepared("chat", request.model, [prompt], True, settings, [tokens], include_usage)
    prepared.constraint, prepared.tools = shape.constraint, shape.plan
    prepared.pieces = getattr(state.backend, "token_pieces", None)
    return prepared


def prepare_completion(state: ServerState, request: CompletionRequest) -> Prepared:
    _check_common(state, request)
    check_rows(state, request)  # before counting the tokens of thousands of prompts
    prompts = request.prompts()
    if request.echo and request.stream:
        raise ApiError(400, "echo is not supported with stream=true: ask without streaming.", param="echo",
                       code="unsupported_parameter")  # fmt: skip
    check_token_ids(state.backend, prompts)
    counts = [len(p) if isinstance(p, list) else state.backend.count_tokens(p) for p in prompts]
    for index, count in enumerate(counts):
        if count == 0:
            where = "prompt" if len(prompts) == 1 else f"prompt[{index}]"
            raise ApiError(400, f"{where} is empty: give some text to complete.", param="prompt")
    max_new = min(_max_new_tokens(state, request.model, request.max_tokens, count, "max_tokens", "prompt") for count in counts)
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    scored = request.logprobs if request.logprobs is not None else 0 if max_new == 0 else None
    settings = _settings(
        request, max_new, logit_bias(state.backend, request), logprobs=request.logprobs,
        prompt_logprobs=scored if request.echo else None,
    )  # fmt: skip
    prepared = Prepared("completion", request.model, prompts, False, settings, counts, include_usage, request.echo)
    prepared.pieces = getattr(state.backend, "token_pieces", None)
    prepared.detokenize = getattr(state.backend, "detokenize", None)
    return prepared


# --- generating --------------------------------------------------------------------------------------


def submit(state: ServerState, prepared: Prepared) -> list[GenerationHandle]:
    """Start every prompt of the request (they decode together); call inside ``lifecycle.working``."""
    handles = []
    try:
        for prompt in prepared.prompts:
            if isinstance(prompt, list):  # token ids: the backend offers "token_prompts" (checked in prepare)
                handle = state.backend.submit_tokens(prepared.model, prompt, prepared.settings, group=prepared.id)  # type: ignore[attr-defined]
            else:
                constrained = {"constraint": prepared.constraint} if prepared.constraint is not None else {}
                handle = state.backend.submit(
                    prepared.model, prompt, prepared.settings, formatted=prepared.formatted, group=prepared.id, **constrained
                )
            handles.append(handle)
    except GenlabError as error:
        for handle in handles:
            handle.cancel()
        raise from_genlab_error(error) from None
    return handles


def run(state: ServerState, prepared: Prepared, cancel: threading.Event | None = None) -> dict[str, Any]:
    """Generate and wait: the OpenAI response body (blocking; run it in a worker thread).

    ``cancel``: once set, the request's rows are cancelled (their batch slots free at the next step)
    and :class:`RequestCancelled` is raised.
    """
    with state.lifecycle.working():
        handles = submit(state, prepared)
        try:
            results = [_wait(handle, cancel) for handle in handles]
        except BaseException:
            for handle in handles:
                handle.cancel()
            raise
    _count(state, prepared, results)
    return response_body(prepared, results)


def _wait(handle: GenerationHandle, cancel: threading.Event | None) -> GenerationResult:
    if cancel is None:
        return handle.result()
    while not cancel.is_set():
        try:
            return handle.result(timeout=CANCEL_POLL_SECONDS)
        except TimeoutError:
            continue
    raise RequestCancelled("the request was cancelled before its answer was ready")


def _count(state: ServerState, prepared: Prepared, results: list[GenerationResult]) -> None:
    state.metrics.count_tokens(prepared.model, sum(r.prompt_tokens for r in results), sum(r.completion_tokens for r in results))


def _usage(results: list[GenerationResult]) -> dict[str, int]:
    prompt = sum(r.prompt_tokens for r in results)
    completion = sum(r.completion_tokens for r in results)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def response_body(prepared: Prepared, results: list[GenerationResult]) -> dict[str, Any]:
    n = prepared.settings.num_return_sequences
    head = {"id": prepared.response_id, "created": prepared.created, "model": prepared.model, "system_fingerprint": None}
    choices: list[dict[str, Any]] = []
    for p, result in enumerate(results):
        for c, choice in enumerate(result.choices):
            if prepared.kind == "chat":
                message, finish = assistant_message(choice.text, choice.finish_reason, prepared.tools)
                logprobs = chat_logprobs(choice.logprobs, prepared.pieces) if choice.logprobs is not None else None
                choices.append({"index": p * n + c, "message": message, "logprobs": logprobs, "finish_reason": finish})
            else:
                text, logprobs = echoed_choice(prepared.prompts[p], result, choice, prepared.echo, prepared.pieces, prepared.detokenize)
                choices.append({"index": p * n + c, "text": text, "logprobs": logprobs, "finish_reason": choice.finish_reason})
    kind = "chat.completion" if prepared.kind == "chat" else "text_completion"
    return {**head, "object": kind, "choices": choices, "usage": _usage(results)}


# --- streaming ---------------------------------------------------------------------------------------


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _chunk(prepared: Prepared, choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> dict[str, Any]:
    kind = "chat.completion.chunk" if prepared.kind == "chat" else "text_completion"
    chunk: dict[str, Any] = {
        "id": prepared.response_id, "object": kind, "created": prepared.created, "model": prepared.model, "choices": choices,
    }  # fmt: skip
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def _delta(
    prepared: Prepared, index: int, text: str | None, finish: str | None, *, role: bool = False, logprobs: Any = None
) -> dict[str, Any]:
    if prepared.kind == "chat":
        delta: dict[str, Any] = {}
        if role:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
    return {"index": index, "text": text or "", "logprobs": logprobs, "finish_reason": finish}


def _tool_delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}


def stream_events(prepared: Prepared, handles: list[GenerationHandle]) -> Iterator[str | list[GenerationResult]]:
    """Server-sent events of the answer (blocking iterator); the last item is the list of results."""
    n = prepared.settings.num_return_sequences
    if prepared.kind == "chat":
        yield _event(_chunk(prepared, [_delta(prepared, i, "", None, role=True) for i in range(n * len(handles))]))
    results = []
    logprobs_of = StreamedLogprobs(prepared.kind == "chat", prepared.pieces)
    tools = ToolStream(prepared.tools) if prepared.tools is not None else None
    try:
        for p, handle in enumerate(handles):
            for delta in handle:
                index = p * n + delta.choice
                if tools is not None:  # content and tool-call deltas (genlab.serving.tools)
                    yield from (_event(_chunk(prepared, [_tool_delta(index, piece)])) for piece in tools.feed(index, delta.text))
                    continue
                yield _event(_chunk(prepared, [_delta(prepared, index, delta.text, None, logprobs=logprobs_of(index, delta))]))
            result = handle.result()
            results.append(result)
            finals = [_delta(prepared, p * n + c, None, choice.finish_reason) for c, choice in enumerate(result.choices)]
            if tools is not None:
                for c, choice in enumerate(result.choices):
                    pieces, finals[c]["finish_reason"] = tools.end(p * n + c, choice.finish_reason)
                    yield from (_event(_chunk(prepared, [_tool_delta(p * n + c, piece)])) for piece in pieces)
            yield _event(_chunk(prepared, finals))
    except Exception as error:  # noqa: BLE001 - the status line is sent: report the failure in the stream
        log.exception("generation failed while streaming")
        api = from_genlab_error(error) if isinstance(error, GenlabError) else ApiError(500, "generation failed (see the server's log).")
        yield _event(api.body())
        yield "data: [DONE]\n\n"
        return
    if prepared.include_usage:
        yield _event(_chunk(prepared, [], _usage(results)))
    yield "data: [DONE]\n\n"
    yield results


async def stream(state: ServerState, prepared: Prepared, handles: list[GenerationHandle], on_close: Any) -> AsyncIterator[str]:
    """``stream_events`` for a StreamingResponse: each blocking step in a worker thread; ``on_close()`` at the end."""
    import anyio

    events = stream_events(prepared, handles)
    try:
        while True:
            item = await anyio.to_thread.run_sync(next, events, None, limiter=state.waiters)
            if item is None:
                return
            if isinstance(item, list):
                _count(state, prepared, item)
                continue
            yield item
    finally:
        for handle in handles:
            handle.cancel()
        on_close()
