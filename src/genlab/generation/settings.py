"""Generation settings: one validated object per request, shared by the CLI, evaluation and serving.

Temperature 0 means greedy decoding (argmax at every step); any temperature above 0 samples from the
softmax of logits / temperature, after top-k and top-p (nucleus) filtering. A seed makes sampling
reproducible for that request alone, whatever else shares its batch.

``logit_bias`` (token id -> -100..100, added to the logits), ``frequency_penalty`` and
``presence_penalty`` (OpenAI's formula over the generated tokens, :mod:`genlab.generation.penalties`)
change what is picked; ``logprobs`` and ``prompt_logprobs`` only record log-probabilities of the raw
model distribution (:mod:`genlab.generation.logprobs`). ``max_new_tokens=0`` scores the prompt
without generating, so it needs ``prompt_logprobs``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from genlab.errors import invalid_value


class GenerationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(default=64, ge=0, le=32_768)  # 0: only score the prompt (needs prompt_logprobs)
    temperature: float = Field(default=0.0, ge=0.0, le=100.0)  # 0 = greedy
    top_k: int = Field(default=0, ge=0)  # 0 = no top-k filtering
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)  # 1 = no nucleus filtering
    repetition_penalty: float = Field(default=1.0, gt=0.0)  # 1 = none (CTRL, Keskar et al. 2019)
    stop: tuple[str, ...] = ()  # generation ends before the first occurrence of any of these
    seed: int | None = None  # sampling seed; None = a fresh random seed
    num_return_sequences: int = Field(default=1, ge=1, le=64)
    # token id -> added to its logit (OpenAI's range): -100 all but bans a token, +100 all but forces it
    logit_bias: tuple[tuple[int, float], ...] = ()
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)  # OpenAI's: minus this x times generated
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)  # OpenAI's: minus this once generated
    logprobs: int | None = Field(default=None, ge=0, le=20)  # None: off; k: each picked token's and top k
    prompt_logprobs: int | None = Field(default=None, ge=0, le=20)  # None: off; k: each prompt token's and top k

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise invalid_value(error, prefix="generation settings") from None

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_tuple(cls, value: Any) -> Any:
        if isinstance(value, str):
            return (value,)
        return tuple(value) if value is not None else ()

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(s == "" for s in value):
            raise ValueError("a stop sequence cannot be empty")
        return value

    @field_validator("logit_bias", mode="before")
    @classmethod
    def _bias_as_pairs(cls, value: Any) -> Any:
        if isinstance(value, dict):
            value = value.items()
        return tuple(sorted((int(token), float(bias)) for token, bias in value or ()))

    @field_validator("logit_bias")
    @classmethod
    def _bias_in_range(cls, value: tuple[tuple[int, float], ...]) -> tuple[tuple[int, float], ...]:
        for token, bias in value:
            if token < 0:
                raise ValueError(f"token id {token} is not a token: ids are 0 or more")
            if not -100.0 <= bias <= 100.0:
                raise ValueError(f"the bias {bias} of token {token} is outside -100..100")
        return value

    @model_validator(mode="after")
    def _scoring_needs_prompt_logprobs(self) -> GenerationSettings:
        if self.max_new_tokens == 0 and self.prompt_logprobs is None:
            raise ValueError("max_new_tokens=0 generates nothing: it only scores the prompt, which needs prompt_logprobs")
        return self

    @model_validator(mode="after")
    def _greedy_returns_one(self) -> GenerationSettings:
        if self.num_return_sequences > 1 and self.greedy:
            raise ValueError(
                "num_return_sequences > 1 needs sampling (temperature > 0): greedy decoding returns one answer"
            )
        return self

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def with_overrides(self, **changes: Any) -> GenerationSettings:
        """A copy with some fields changed, validated again."""
        return GenerationSettings(**{**self.model_dump(), **{k: v for k, v in changes.items() if v is not None}})
