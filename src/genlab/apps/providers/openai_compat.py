"""Any OpenAI-compatible HTTP endpoint (vLLM, Ollama, OpenAI, ``genlab serve``) as a provider.

Where the endpoint is, in order: the ``base_url`` / ``api_key`` arguments, then the environment
variables ``GENLAB_OPENAI_BASE_URL`` / ``GENLAB_OPENAI_API_KEY``, then ``OPENAI_BASE_URL`` /
``OPENAI_API_KEY`` (what the official client reads), then OpenAI's own URL. The base URL includes
the API version, as with the official client: ``http://localhost:8000/v1``.

HTTP goes through ``requests``; what is written here is the retry policy, because the errors must
be genlab's one-sentence errors: connection failures, timeouts, HTTP 429 and 5xx are retried with
exponential back-off (``backoff * 2**attempt`` seconds, or the server's ``Retry-After`` when it
sends one, capped at ``max_backoff``); 401/403 (bad key), 404 and other 4xx fail at once.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from genlab.apps.providers.base import ProviderError, word_offsets

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key: str | None = None
    timeout: float = 60.0  # seconds to connect and to wait for each answer
    retries: int = 3  # further attempts after the first, for connection errors, timeouts, 429 and 5xx
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    max_backoff: float = 20.0

    @classmethod
    def resolve(cls, base_url: str | None = None, api_key: str | None = None, **options: Any) -> Endpoint:
        env = os.environ
        url = base_url or env.get("GENLAB_OPENAI_BASE_URL") or env.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        key = api_key or env.get("GENLAB_OPENAI_API_KEY") or env.get("OPENAI_API_KEY") or None
        if not url.startswith(("http://", "https://")):
            raise ProviderError(f"the endpoint base URL {url!r} must start with http:// or https://.")
        return cls(url.rstrip("/"), key, **options)

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST ``payload`` as JSON to ``base_url + path`` and return the JSON answer, retrying as above."""
        import requests

        url = f"{self.base_url}{path}"
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        attempts = self.retries + 1
        problem = ""
        for attempt in range(attempts):
            wait = min(self.backoff * 2**attempt, self.max_backoff)
            try:
                response = requests.post(url, json=payload, headers=headers, timeout=self.timeout)
            except requests.exceptions.Timeout:
                problem = f"it did not answer within {self.timeout:g} s"
            except requests.exceptions.ConnectionError as error:
                problem = _connection_reason(error)
            else:
                status = response.status_code
                if status < 400:
                    try:
                        return response.json()
                    except ValueError:
                        raise ProviderError(f"the endpoint at {url} answered with something that is not JSON.") from None
                detail = _error_detail(response)
                if status in (401, 403):
                    raise ProviderError(
                        f"the endpoint at {self.base_url} rejected the API key (HTTP {status}{detail}); "
                        "set GENLAB_OPENAI_API_KEY or OPENAI_API_KEY to a valid key."
                    )
                if status not in RETRYABLE_STATUS:
                    raise ProviderError(f"the endpoint at {url} refused the request (HTTP {status}{detail}).")
                problem = f"it answered HTTP {status}{detail}"
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.replace(".", "", 1).isdigit():
                    wait = min(float(retry_after), self.max_backoff)
            if attempt + 1 < attempts:
                time.sleep(wait)
        tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        raise ProviderError(
            f"cannot use the OpenAI-compatible endpoint at {self.base_url}: {problem} ({tries}); "
            "check that it is running and GENLAB_OPENAI_BASE_URL points at it."
        )


def _connection_reason(error: Exception) -> str:
    text = str(error).lower()
    if "refused" in text:
        return "the connection was refused"
    if "name or service not known" in text or "nodename nor servname" in text or "resolve" in text:
        return "its host name does not resolve"
    return "it cannot be reached"


def _error_detail(response: Any) -> str:
    try:
        body = response.json()
        message = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else body.get("error")
        message = message or body.get("detail") or body.get("message")
    except (ValueError, AttributeError):
        message = None
    return f": {str(message).strip().rstrip('.')}" if message else ""


def estimate_tokens(text: str) -> int:
    """A cautious token count for a model whose tokenizer is not at hand (about 4 characters per
    token in English, OpenAI's rule of thumb; never fewer than the words and punctuation marks)."""
    return max(math.ceil(len(text) / 3.5), len(word_offsets(text)))


class OpenAICompatProvider:
    """Text generation through ``/chat/completions`` (or ``/completions`` for base models)."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        context_window: int = 8192,
        api: str = "chat",
        **endpoint_options: Any,
    ) -> None:
        if api not in ("chat", "completions"):
            raise ProviderError(f"api={api!r} is not allowed: use 'chat' or 'completions'.")
        self.model, self.api, self.context_window = model, api, context_window
        self.name = f"openai:{model}"
        self.endpoint = Endpoint.resolve(base_url, api_key, **endpoint_options)

    def complete(
        self, prompt: str, *, max_tokens: int = 256, stop: Sequence[str] = (), temperature: float = 0.0
    ) -> str:
        payload: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens, "temperature": temperature}
        if stop:
            payload["stop"] = list(stop)[:4]  # OpenAI accepts at most four
        if self.api == "chat":
            payload["messages"] = [{"role": "user", "content": prompt}]
            answer = self.endpoint.post("/chat/completions", payload)
        else:
            payload["prompt"] = prompt
            answer = self.endpoint.post("/completions", payload)
        try:
            choice = answer["choices"][0]
            text = choice["message"]["content"] if self.api == "chat" else choice["text"]
        except (KeyError, IndexError, TypeError):
            raise ProviderError(
                f"the endpoint at {self.endpoint.base_url} answered without choices[0] text (not an OpenAI-style reply)."
            ) from None
        text = text or ""
        cut = min((text.find(s) for s in stop if s and s in text), default=-1)  # servers may ignore stop
        return text[:cut] if cut >= 0 else text

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)


class OpenAICompatEmbedder:
    """Embeddings through ``/embeddings``; vectors are normalised to unit length here."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        max_tokens: int = 512,
        batch_size: int = 128,
        **endpoint_options: Any,
    ) -> None:
        self.model, self.max_tokens, self.batch_size = model, max_tokens, batch_size
        self.name = f"openai:{model}"
        self.endpoint = Endpoint.resolve(base_url, api_key, **endpoint_options)
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.embed(["dimension probe"]).shape[1])
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        parts = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            answer = self.endpoint.post("/embeddings", {"model": self.model, "input": batch})
            try:
                rows = sorted(answer["data"], key=lambda row: row.get("index", 0))
                parts.append(np.asarray([row["embedding"] for row in rows], dtype=np.float32))
            except (KeyError, TypeError, ValueError):
                raise ProviderError(
                    f"the endpoint at {self.endpoint.base_url} answered /embeddings without data[i].embedding."
                ) from None
            if parts[-1].shape[0] != len(batch):
                raise ProviderError(
                    f"the endpoint at {self.endpoint.base_url} returned {parts[-1].shape[0]} embeddings for {len(batch)} texts."
                )
        if not parts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        vectors = np.concatenate(parts)
        self._dim = int(vectors.shape[1])
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return word_offsets(text)  # the remote tokenizer is unknown: words are a cautious stand-in
