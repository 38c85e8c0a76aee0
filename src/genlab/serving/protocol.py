"""The OpenAI wire format: request bodies of the endpoints genlab serves, as pydantic models.

The response bodies are in :mod:`genlab.serving.responses`.

Field names, defaults and limits follow OpenAI's API reference (completions, chat completions,
embeddings, models, streaming chunks); ``top_k`` and ``repetition_penalty`` are extensions (as in
vLLM). Fields OpenAI accepts and genlab does not use (``user``) are ignored; features it does not offer
(``best_of``, ``suffix``) are refused, and so are optional fields (log-probabilities, ``echo``,
``logit_bias``, penalties, token prompts) when the server's backend cannot honour them. Chat takes
``tools`` and ``response_format`` as OpenAI's, and ``structured_outputs`` as vLLM's (since v0.12).

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
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)  # OpenAI's formula, generated tokens only
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None  # token id (as a string) -> -100..100, added to its logit
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
        return None

    def optional_features(self) -> list[str]:
        """The optional request fields this request uses (``genlab.serving.backend.FEATURES``), in a fixed order."""
        used = []
        if self.frequency_penalty:
            used.append("frequency_penalty")
        if self.presence_penalty:
            used.append("presence_penalty")
        if self.logit_bias:
            used.append("logit_bias")
        return used

    def bias_by_token(self) -> dict[int, float]:
        """``logit_bias`` with integer keys; a key that is not a token id is a ValueError naming it."""
        bias = {}
        for key, value in (self.logit_bias or {}).items():
            if not key.strip().isdigit():
                raise ValueError(f"logit_bias key {key!r} is not a token id (a non-negative integer)")
            if not -100.0 <= value <= 100.0:
                raise ValueError(f"logit_bias of token {key} is {value}, outside -100..100")
            bias[int(key)] = float(value)
        return bias


class StreamOptions(BaseModel):
    include_usage: bool = False


TokenIds = list[Annotated[int, Field(ge=0)]]


class CompletionRequest(_Request):
    prompt: Text | list[Text] | TokenIds | list[TokenIds] = Field(
        description="A prompt, a list of prompts (one completion each), or token ids: one list or a list of lists."
    )
    max_tokens: int | None = Field(default=16, ge=0)  # OpenAI's default for completions; 0 (with echo): only score
    echo: bool = False  # the prompt before the answer, with its tokens' log-probabilities when logprobs is set
    logprobs: int | None = Field(default=None, ge=0, le=20)  # each token's and the k most likely (legacy format)
    best_of: int | None = Field(default=None, ge=1)
    suffix: Text | None = None
    structured_outputs: Any = None  # vLLM takes it here too; genlab constrains chat answers only: refused
    response_format: Any = None

    @field_validator("prompt")
    @classmethod
    def _some_prompt(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("the prompt list is empty")
        if isinstance(value, list) and any(isinstance(ids, list) and not ids for ids in value):
            raise ValueError("a prompt's token list is empty")
        return value

    def prompts(self) -> list[str | list[int]]:
        """One entry per prompt: its text, or its token ids."""
        if isinstance(self.prompt, str):
            return [self.prompt]
        if self.prompt and isinstance(self.prompt[0], int):
            return [list(self.prompt)]  # type: ignore[arg-type]
        return list(self.prompt)  # type: ignore[arg-type]

    def optional_features(self) -> list[str]:
        used = super().optional_features()
        if self.logprobs is not None:
            used.append("logprobs")
        if self.echo:
            used.append("echo")
        if any(isinstance(p, list) for p in self.prompts()):
            used.append("token_prompts")
        return used

    def unsupported(self) -> tuple[str, str] | None:
        if self.max_tokens == 0 and not self.echo:
            return "max_tokens", "max_tokens=0 generates nothing: it is allowed only with echo=true, to score the prompt."
        if self.best_of not in (None, 1):
            return "best_of", "best_of is not supported by this server; use n."
        if self.suffix:
            return "suffix", "suffix (insertion) is not supported by this server."
        for name in ("structured_outputs", "response_format"):
            if getattr(self, name) is not None:
                return name, f"{name} is supported on /v1/chat/completions only: send the prompt as a chat message."
        return super().unsupported()


class TextPart(BaseModel):
    type: Literal["text"]
    text: Text


FUNCTION_NAME = r"^[a-zA-Z0-9_-]{1,64}$"  # OpenAI's rule for function and schema names


class FunctionCall(BaseModel):
    name: str = Field(pattern=FUNCTION_NAME)
    arguments: Text = "{}"  # a JSON object, as text (OpenAI's shape)


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: Text
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Text | list[TextPart] | None = None
    name: Text | None = None
    tool_calls: list[ToolCall] | None = None  # an assistant turn's calls
    tool_call_id: Text | None = None  # a tool result: the call it answers

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=FUNCTION_NAME)
    description: Text | None = None
    parameters: dict[str, Any] | None = None  # a JSON schema of the arguments object; None: no arguments
    strict: bool | None = None  # the arguments follow the schema exactly (forced calls always do here)


class ToolSpec(BaseModel):
    type: Literal["function"]
    function: FunctionSpec


class NamedFunction(BaseModel):
    name: str = Field(pattern=FUNCTION_NAME)


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = Field(pattern=FUNCTION_NAME)
    description: Text | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")  # None: any JSON object
    strict: bool | None = None  # the output follows the schema exactly (constrained output here always does)


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None  # needed with type json_schema


class StructuredOutputs(BaseModel):
    """vLLM's extension (its ``structured_outputs`` field since v0.12): exactly one of choice, regex, json."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)  # grammar, structural_tag, ...: refused

    choice: list[Text] | None = Field(default=None, min_length=1)
    regex: Text | None = None
    json_: dict[str, Any] | Text | None = Field(default=None, alias="json")


class ChatCompletionRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)  # None: as many as fit (up to the server's limit)
    max_completion_tokens: int | None = Field(default=None, ge=1)  # OpenAI's newer name for max_tokens
    logprobs: bool = False  # each answer token's log-probability
    top_logprobs: int | None = Field(default=None, ge=0, le=20)  # and the k most likely tokens (needs logprobs)
    tools: list[ToolSpec] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None  # None: auto with tools
    parallel_tool_calls: bool | None = None  # None: true
    response_format: ResponseFormat | None = None
    structured_outputs: StructuredOutputs | None = None  # vLLM's extension
    guided_json: Any = None  # vLLM's fields before v0.12 (it removed them): refused with a pointer to structured_outputs
    guided_regex: Any = None
    guided_choice: Any = None

    def wanted_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def optional_features(self) -> list[str]:
        return super().optional_features() + (["logprobs"] if self.logprobs else [])

    def logprobs_wanted(self) -> int | None:
        """k for the engine's ``logprobs`` setting (None: off)."""
        return (self.top_logprobs or 0) if self.logprobs else None

    def conversation(self) -> list[dict[str, Any]]:
        """Role and text of each message, with ``tool_calls`` / ``tool_call_id`` where it has them."""
        messages: list[dict[str, Any]] = []
        for m in self.messages:
            # "developer" is OpenAI's newer name for "system"; chat templates know "system".
            message: dict[str, Any] = {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            if m.tool_calls:
                message["tool_calls"] = [call.model_dump() for call in m.tool_calls]
            if m.tool_call_id is not None:
                message["tool_call_id"] = m.tool_call_id
            messages.append(message)
        return messages

    def unsupported(self) -> tuple[str, str] | None:
        if self.top_logprobs is not None and not self.logprobs:
            return "top_logprobs", "top_logprobs needs logprobs=true."
        for old, key in (("guided_json", "json"), ("guided_regex", "regex"), ("guided_choice", "choice")):
            if getattr(self, old) is not None:
                return old, f"{old} was removed by vLLM (v0.12) and is not supported here: send structured_outputs: {{'{key}': ...}}."
        return super().unsupported()


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: Text = Field(min_length=1)
    input: Text | list[Text] | TokenIds | list[TokenIds] = Field(
        description="A text, a list of texts, or token ids of the embedding model's tokenizer: one list or a list of lists."
    )
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: Text | None = None

    @field_validator("input")
    @classmethod
    def _some_input(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("the input list is empty")
        if isinstance(value, list) and any(isinstance(ids, list) and not ids for ids in value):
            raise ValueError("an input's token list is empty")
        return value

    def texts(self) -> list[str | list[int]]:
        """One entry per input: its text, or its token ids."""
        if isinstance(self.input, str):
            return [self.input]
        if self.input and isinstance(self.input[0], int):
            return [list(self.input)]  # type: ignore[arg-type]
        return list(self.input)  # type: ignore[arg-type]


# --- responses --------------------------------------------------------------------------------------


_Request.model_rebuild()
CompletionRequest.model_rebuild()
ChatCompletionRequest.model_rebuild()
