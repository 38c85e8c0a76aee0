"""``ServeConfig``: everything ``genlab serve`` is told, typed and checked before anything loads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from genlab.errors import invalid_value

BackendName = Literal["genlab", "onnxruntime-genai", "ctranslate2", "llama.cpp", "vllm"]
API_KEY_ENV = "GENLAB_API_KEY"


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = "smollm2-135m-instruct"  # pack name, model folder or GGUF file
    adapters: dict[str, str] = Field(default_factory=dict)  # served id -> adapter folder or name
    backend: BackendName = "genlab"
    host: str = "127.0.0.1"  # loopback by default: exposing a model to a network is a choice to make
    port: int = Field(default=8000, ge=0, le=65535)  # 0: any free port
    api_key: str | None = None  # Bearer key every /v1 request must carry; None: no key needed
    idle_unload: float | None = Field(default=None, gt=0)  # seconds idle before the weights are freed
    threads: int | None = Field(default=None, ge=1, le=1024)  # torch threads for generation; None: torch's default
    max_batch: int = Field(default=8, ge=1, le=256)  # rows decoded together (8: the bench's sweet spot here)
    # onnxruntime-genai: engines decoding side by side, one thread each (None: one per thread; 1: one engine
    # on every thread, the model loaded once instead of twice)
    lanes: int | None = Field(default=None, ge=1, le=1024)
    batching: bool = True  # False: one request at a time (max_batch 1), the benchmark's baseline
    # Rows (prompts x n, summed over requests) in flight before 429: a request takes one place per row,
    # so 2,000 prompts cannot pass for one request. 256: 32 batches of the default 8 rows.
    max_concurrent: int = Field(default=256, ge=1, le=100_000)
    max_request_rows: int = Field(default=64, ge=1, le=100_000)  # prompts x n one request (or job) may ask for
    max_tokens_limit: int = Field(default=2048, ge=1, le=1_000_000)  # the most tokens one request may ask for
    max_n: int = Field(default=8, ge=1, le=64)  # the most choices (n) one request may ask for
    max_body_bytes: int = Field(default=1_000_000, ge=1024)  # request bodies above this get 413
    jobs_db: Path | None = None  # None: $GENLAB_HOME/jobs.sqlite
    job_workers: int = Field(default=2, ge=0, le=64)  # threads running async jobs (0: accept, never run)
    # A job still running when the server stopped this many times is failed, not run again: a request
    # that kills the server (or outlasts every restart) must not come back forever.
    job_max_attempts: int = Field(default=2, ge=1, le=100)
    embedder: str | None = None  # /v1/embeddings model: None is genlab's MiniLM pack; "hashing-N" for tests
    record_lineage: bool = True  # record the endpoint as a lineage run
    public_docs: bool = False  # with an API key: /docs, /redoc and /openapi.json open to all (else they need the key)
    # POST /v1/load_lora_adapter loads only folders under this one (None: loading at run time is off,
    # so a client holding the key cannot make the server read arbitrary folders)
    adapter_root: Path | None = None

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise invalid_value(error, prefix="serve") from None

    @field_validator("adapters")
    @classmethod
    def _adapter_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not name or any(c.isspace() for c in name) or "/" in name:
                raise ValueError(f"adapter name {name!r} must be non-empty, without spaces or '/'")
        return value

    @field_validator("api_key")
    @classmethod
    def _non_empty_key(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("an API key cannot be empty")
        return value

    @field_validator("adapter_root")
    @classmethod
    def _existing_root(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        if not value.expanduser().is_dir():
            raise ValueError(f"adapter_root {str(value)!r} is not a folder")
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _adapters_need_genlab(self) -> ServeConfig:
        if (self.adapters or self.adapter_root is not None) and self.backend != "genlab":
            raise ValueError(f"adapters are served by the genlab backend only, not by {self.backend}")
        if self.model in self.adapters:
            raise ValueError(f"adapter name {self.model!r} is the base model's id: choose another name")
        if self.lanes is not None and self.backend != "onnxruntime-genai":
            raise ValueError(f"lanes are a setting of the onnxruntime-genai backend, not of {self.backend}")
        return self

    @property
    def request_rows_limit(self) -> tuple[int, str]:
        """(rows one request may ask for, the flag that sets it): a request above --max-concurrent could never run."""
        if self.max_concurrent < self.max_request_rows:
            return self.max_concurrent, "--max-concurrent"
        return self.max_request_rows, "--max-request-rows"

    @property
    def batch_size(self) -> int:
        """Rows the engine decodes together: ``max_batch``, or 1 with batching off."""
        return self.max_batch if self.batching else 1

    @classmethod
    def from_cli(cls, adapters: list[str] | None = None, api_key: str | None = None, **values: Any) -> ServeConfig:
        """A config from command-line values: ``NAME=PATH`` adapter flags, the key from the environment if unset."""
        from genlab.errors import InvalidValueError

        parsed: dict[str, str] = {}
        for flag in adapters or []:
            name, sep, path = flag.partition("=")
            if not sep or not name.strip() or not path.strip():
                raise InvalidValueError(f"--adapter {flag!r} is not allowed: write NAME=PATH (e.g. support=./adapters/support).")
            if name.strip() in parsed:
                raise InvalidValueError(f"--adapter name {name.strip()!r} is given twice: each adapter needs its own name.")
            parsed[name.strip()] = path.strip()
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
        return cls(adapters=parsed, api_key=key, **values)
