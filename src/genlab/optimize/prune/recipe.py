"""The recipe of ``genlab optimize prune`` (:class:`PruneRecipe`) and how to prune (:class:`PruneConfig`).

It imports no torch: the registry and the CLI import it at start-up (see :mod:`genlab.methods`).
The lifecycle's ``optimise.prune`` section holds :class:`PruneConfig` settings too.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from genlab.errors import invalid_value
from genlab.models.packs import DEFAULT_GENERATOR
from genlab.optimize.measure import EvalSpec
from genlab.tracking.config import TrackingConfig

PruneMethod = Literal["unstructured", "heads", "neurons"]
STRUCTURED = ("heads", "neurons")


class PruneConfig(BaseModel):
    """How to prune; validates itself (build it with :func:`prune_settings` for a one-sentence error)."""

    model_config = ConfigDict(extra="forbid")

    method: PruneMethod = "unstructured"
    sparsity: float  # the fraction of weights (unstructured) or of neurons / heads (structured) removed
    scope: Literal["global", "layer"] | None = None  # None: global for unstructured, layer for structured
    heads_unit: Literal["group", "query"] = "group"  # heads of a GQA model: whole KV groups, or query heads per group
    recover_steps: int = Field(default=0, ge=0)  # LoRA recovery batches after pruning (0: none)
    recover_data: str | None = None  # rows to recover on (the eval spec's fields and template)
    recover_learning_rate: float = Field(default=5e-4, gt=0, lt=1)
    recover_batch_size: int = Field(default=4, ge=1)
    recover_rank: int = Field(default=8, ge=1)  # LoRA r (alpha = 2r)
    seed: int = 0

    @field_validator("sparsity")
    @classmethod
    def _a_fraction(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError("sparsity is the fraction removed, strictly between 0 and 1 (e.g. 0.5)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PruneConfig:
        if self.scope is None:
            self.scope = "layer" if self.method in STRUCTURED else "global"
        if self.method in STRUCTURED and self.scope != "layer":
            raise ValueError(
                f"--method {self.method} removes the same number of units from every layer (a transformers config "
                "has one intermediate_size and one head count for all layers), so --scope must be layer"
            )
        if self.recover_steps > 0 and not self.recover_data:
            raise ValueError("--recover-steps needs --recover-data, the rows to fine-tune on")
        return self


def prune_settings(**values: Any) -> PruneConfig:
    """A validated :class:`PruneConfig`; a bad value raises :class:`InvalidValueError` in one sentence."""
    try:
        return PruneConfig(**values)
    except ValidationError as error:
        raise invalid_value(error) from None


class PruneRecipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = DEFAULT_GENERATOR  # a name, folder or hub id
    prune: PruneConfig
    evaluation: EvalSpec = Field(default_factory=EvalSpec)  # how the original and the result are measured (and recovery's fields)
    measure: bool = True  # False: save the pruned folder only (the report then holds zeros)
    output: str | None = None  # the pruned model's folder; None: $GENLAB_HOME/optimized/<model>-prune-<method>-<sparsity>
    tracking: TrackingConfig | None = Field(default=None, exclude=True)  # also log to MLflow (genlab.tracking); not in model_dump
