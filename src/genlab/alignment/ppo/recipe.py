"""The recipe of ``genlab align ppo`` (:class:`PpoRecipe`, with the algorithm's settings :class:`PPOConfig`).

It imports no training library: the registry and the CLI import it at start-up (see :mod:`genlab.methods`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from genlab.tracking.config import TrackingConfig
from genlab.training.checkpoints import checkpoints_dir
from genlab.tuning.recipe import LoraConfig, Section


class PPOConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: int = Field(default=20, ge=1)  # rollout + update rounds
    batch_size: int = Field(default=8, ge=1)  # prompts per step, one sampled response each
    mini_batch_size: int = Field(default=4, ge=1)  # sequences per gradient step
    ppo_epochs: int = Field(default=4, ge=1)  # passes over each rollout (the paper's K)
    learning_rate: float = Field(default=1e-4, gt=0, lt=1)
    clip_range: float = Field(default=0.2, gt=0, lt=1)  # eps of the clipped surrogate
    clip_range_value: float = Field(default=0.2, gt=0)  # eps_v of the clipped value loss
    vf_coef: float = Field(default=0.1, ge=0)  # the value loss shares the policy's trunk: keep it small
    gamma: float = Field(default=1.0, gt=0, le=1)  # 1: a response is one short episode, no discount
    lam: float = Field(default=0.95, ge=0, le=1)  # GAE's bias/variance trade-off
    kl_coef: float = Field(default=0.2, ge=0)  # beta; 0 switches the penalty off
    adaptive_kl: bool = False  # steer beta so the KL approaches target_kl
    target_kl: float = Field(default=6.0, gt=0)  # nats per sequence (Ziegler et al. used 6 for style tasks)
    kl_horizon: int = Field(default=10_000, ge=1)  # sequences over which beta may change by ~20%
    whiten_advantages: bool = True
    max_grad_norm: float = Field(default=1.0, gt=0)
    max_new_tokens: int = Field(default=48, ge=1)  # response length cap while sampling
    temperature: float = Field(default=1.0, gt=0, le=10)  # sampling is required: no greedy rollouts
    top_k: int = Field(default=0, ge=0)  # 0: off (see the module docstring)
    top_p: float = Field(default=1.0, gt=0, le=1)  # 1: off
    seed: int = 0
    save_every: int = Field(default=10, ge=1)  # steps between checkpoints (Ctrl-C writes one too)

    @field_validator("mini_batch_size")
    @classmethod
    def _divides_the_batch(cls, value: int, info: ValidationInfo) -> int:
        batch_size = info.data.get("batch_size")
        if batch_size is not None and batch_size % value:
            raise ValueError(f"it must divide batch_size={batch_size}")
        return value


class PpoDataConfig(Section):
    path: str = "builtin:heated"  # heated dialogues with rude language; a data file or hub id works too
    input_field: str = "dialogue"
    target_field: str = "summary"
    template: str = "summarize"
    chat: bool = True  # format prompts with the tokenizer's chat template (when it has one)
    limit: int | None = Field(default=None, ge=1)  # read only the first N rows
    validation_size: float = Field(default=0.25, gt=0)  # a fraction (< 1) or a row count held out
    split_seed: int = 0


class PpoEvaluationConfig(Section):
    limit: int | None = Field(default=None, ge=1)  # held-out rows to score (None: all)
    max_new_tokens: int = Field(default=64, ge=1)
    batch_size: int = Field(default=8, ge=1)


class PpoRecipe(Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    model: str = "smollm2-135m-instruct"
    adapter: str | None = None  # a LoRA adapter (name or folder) merged into the base before PPO
    data: PpoDataConfig = Field(default_factory=PpoDataConfig)
    reward: str = "non-toxicity"  # any genlab.alignment.reward spec: non-toxicity, classifier:..., a reward model
    lora: LoraConfig = Field(default_factory=LoraConfig)
    ppo: PPOConfig = Field(default_factory=PPOConfig)
    evaluation: PpoEvaluationConfig = Field(default_factory=PpoEvaluationConfig)
    tracking: TrackingConfig | None = Field(default=None, exclude=True)  # also log to MLflow (genlab.tracking); not in model_dump
    description: str = ""


def ppo_checkpoints(recipe: PpoRecipe) -> Path:
    """``$GENLAB_HOME/ppo/<name>/checkpoints``: kept until the run completes, for ``--resume``."""
    return checkpoints_dir("ppo", recipe.name)
