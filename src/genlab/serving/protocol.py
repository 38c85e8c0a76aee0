"""The OpenAI wire format: request and response bodies of the endpoints genlab serves, as pydantic models.

Field names, defaults and limits follow OpenAI's API reference (completions, chat completions,
embeddings, models, streaming chunks); ``top_k`` and ``repetition_penalty`` are extensions (as in
vLLM). Fields OpenAI accepts and genlab does not use (``user``, ``frequency_penalty`` at 0, ...) are
ignored; features it does not offer (log-probabilities, ``echo``, ``best_of``, tools) are refused.

Every text field is :data:`Text`: JSON may carry a lone UTF-16 surrogate (``"\ud800"``), which Python
decodes into a string that no tokenizer, database or JSON response can encode; such a field is a 400
naming it, not a failure deep in generation.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

SEED_MAX = 2**63 - 1 - 64  # torch seeds are 64-bit; each choice adds its index
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # valid text has none: pairs were joined when JSON was read


def _valid_unicode(value: str) -> str:
    found = _LONE_SURROGATE.search(value)
    if found is not None:
        raise ValueError(
            f"it contains a lone surrogate (\\u{ord(found.group()):04x} at character {found.start()}), which is not text: "
            "send valid Unicode"
        )
    return value


Text = Annotated[str, AfterValidator(_valid_unicode)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: Text = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)  # None: 1.0, OpenAI's default
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=64)  # the server's --max-n caps it further
    stop: Text | list[Text] | None = None
    seed: int | None = Field(default=None, ge=0, le=SEED_MAX)
    stream: bool = False
    stream_options: StreamOptions | None = None
    top_k: int | None = Field(default=None, ge=0, le=1_000_000)  # extension: 0 = off
    repetition_penalty: float | None = Field(default=None, gt=0.0, le=100.0)  # extension: 1 = off
    logprobs: Any = None
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    user: Text | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else (value or [])
        if len(stops) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        if any(s == "" for s in stops):
            raise ValueError("a stop sequence cannot be empty")
        return value

    def stop_list(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    def unsupported(self) -> tuple[str, str] | None:
        """(param, sentence) for a feature this server does not offer, or None."""
        if self.logprobs not in (None, False, 0):
            return "logprobs", "log-probabilities are not supported by this server."
        for name in ("frequency_penalty", "presence_penalty"):
            if getattr(self, name) not in (None, 0, 0.0):
                return name, f"{name} is not supported by this server; use repetition_penalty (an extension)."
        return None


class StreamOptions(BaseModel):
    include_usage: bool = False


class CompletionRequest(_Request):
    prompt: Text | list[Text] = Field(description="A prompt, or a list of prompts (one completion each).")
    max_tokens: int | None = Field(default=16, ge=1)  # OpenAI's default for completions
    echo: bool = False
    best_of: int | None = Field(default=None, ge=1)
    suffix: Text | None = None

    @field_validator("prompt")
    @classmethod
    def _some_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("the prompt list is empty")
        return value

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def unsupported(self) -> tuple[str, str] | None:
        if self.echo:
            return "echo", "echo is not supported by this server."
        if self.best_of not in (None, 1):
            return "best_of", "best_of is not supported by this server; use n."
        if self.suffix:
            return "suffix", "suffix (insertion) is not supported by this server."
        return super().unsupported()


class TextPart(BaseModel):
    type: Literal["text"]
    text: Text


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: Text | list[TextPart] | None = None
    name: Text | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatCompletionRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)  # None: as many as fit (up to the server's limit)
    max_completion_tokens: int | None = Field(default=None, ge=1)  # OpenAI's newer name for max_tokens
    tools: list[Any] | None = None
    response_format: dict[str, Any] | None = None

    def wanted_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def conversation(self) -> list[dict[str, str]]:
        # "developer" is OpenAI's newer name for "system"; chat templates know "system".
        return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in self.messages]

    def unsupported(self) -> tuple[str, str] | None:
        if self.tools:
            return "tools", "tool calling is not supported by this server."
        if self.response_format and self.response_format.get("type") not in (None, "text"):
            return "response_format", "only response_format {'type': 'text'} is supported by this server."
        return super().unsupported()


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: Text = Field(min_length=1)
    input: Text | list[Text] = Field(description="A text or a list of texts.")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: Text | None = None

    @field_validator("input")
    @classmethod
    def _some_input(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("the input list is empty")
        return value

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


# --- responses --------------------------------------------------------------------------------------


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: None = None
    finish_reason: Literal["stop", "length"] | None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: None = None
    finish_reason: Literal["stop", "length"]


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChatDelta
    logprobs: None = None
    finish_reason: Literal["stop", "length"] | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "genlab"
    parent: str | None = None  # for an adapter: the base model it runs on (as vLLM lists LoRA modules)
    kind: Literal["generator", "adapter", "embedder"] = "generator"  # extension


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str  # str: base64 of little-endian float32


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


_Request.model_rebuild()
CompletionRequest.model_rebuild()
ChatCompletionRequest.model_rebuild()
