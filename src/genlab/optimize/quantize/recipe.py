"""The recipe of ``genlab optimize quantize`` (:class:`QuantizeRecipe`) and how to quantise (:class:`QuantizeConfig`).

It imports no torch: the registry and the CLI import it at start-up (see :mod:`genlab.methods`).
The lifecycle's ``optimise.quantize`` section is a :class:`QuantizeConfig` too.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from genlab.models.packs import DEFAULT_GENERATOR
from genlab.optimize.measure import EvalSpec
from genlab.optimize.quantize.int8_layers import HEAD_RESCORE_TOP_K
from genlab.tracking.config import TrackingConfig

# The quantisation methods (genlab.optimize.quantize.run.METHODS holds how each saves and loads).
QuantMethodName = Literal["int8-dynamic", "fp16", "bf16", "onnx-int8"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QuantizeConfig(Section):
    """How to quantise: the method and, for ``int8-dynamic``, what happens to the LM head."""

    method: QuantMethodName = "int8-dynamic"
    quantize_lm_head: bool = True  # int8-dynamic: the LM head (and a tied embedding) in int8 too
    head_rescore_top_k: int = Field(default=HEAD_RESCORE_TOP_K, ge=0)  # an int8 head's best logits recomputed from fp32 activations


class QuantizeRecipe(Section):
    model: str = DEFAULT_GENERATOR  # a name, folder or hub id
    quantize: QuantizeConfig = Field(default_factory=QuantizeConfig)
    evaluation: EvalSpec = Field(default_factory=EvalSpec)  # how the original and the result are measured
    measure: bool = True  # False: save the quantised folder only (the report then holds zeros)
    output: str | None = None  # the quantised model's folder; None: $GENLAB_HOME/optimized/<model>-<method>
    tracking: TrackingConfig | None = Field(default=None, exclude=True)  # also log to MLflow (genlab.tracking); not in model_dump
