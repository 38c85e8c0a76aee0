"""Model cards: what a practitioner wants to know about a model before choosing it.

A card describes a model whether or not it is on this machine. Cards of hub models carry the
parameter count their authors publish (``params_source="published"``); cards of packs carry the count
measured from the weights on disk (``params_source="measured"``), never a typed-in number.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Family = Literal["decoder-only", "encoder-decoder", "encoder-only", "classifier"]
Objective = Literal[
    "CLM",  # causal language modelling: predict the next token (GPT, Llama, Qwen, SmolLM)
    "MLM",  # masked language modelling: reconstruct masked tokens (BERT, RoBERTa)
    "span corruption",  # reconstruct masked spans (T5, FLAN-T5)
    "denoising",  # reconstruct corrupted text (BART)
    "contrastive",  # sentence embeddings trained on pairs (sentence-transformers)
    "supervised",  # a classifier trained on labels
]


class ArchitectureShape(BaseModel):
    """The dimensions that memory estimates need (KV cache, LoRA matrices, activations)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0)  # < num_heads with grouped-query attention
    intermediate_size: int = Field(gt=0)  # width of the MLP
    vocab_size: int = Field(gt=0)
    gated_mlp: bool = True  # SwiGLU-style MLP (gate, up, down) vs a plain two-matrix MLP
    # Given when the config says so (Gemma, Qwen3, T5's d_kv): there heads × head_dim != hidden_size.
    head_dim: int | None = Field(default=None, gt=0)

    @property
    def attention_head_dim(self) -> int:
        return self.head_dim or self.hidden_size // self.num_heads


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str  # genlab's short name, what the user types
    source: str  # "pack:<name>" for a model pack, else the hub id
    family: Family
    objective: Objective
    architecture: str  # the transformers class, e.g. "LlamaForCausalLM"
    params: int | None = Field(default=None, ge=0)
    params_source: Literal["measured", "published"] = "published"
    context_window: int | None = Field(default=None, gt=0)  # tokens
    license: str
    modality: str = "text"
    tasks: list[str]
    description: str = ""
    instruction_tuned: bool = False
    shape: ArchitectureShape | None = None
    offline: bool = False  # usable on this machine without a network (set at run time for packs)

    @property
    def is_pack(self) -> bool:
        return self.source.startswith("pack:")
