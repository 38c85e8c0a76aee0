"""The fine-tuning recipe: what to train, on which data, how, and how to score it afterwards.

One schema for every method; each method reads its own section (``lora``, ``prompt_tuning``,
``selective``) and ignores the others. ``recipes/dialogsum-*.yaml`` are instances; a test validates
every shipped recipe against this schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from genlab.home import genlab_home
from genlab.tracking.config import TrackingConfig
from genlab.training.checkpoints import checkpoints_dir


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskSource(Section):
    """One dataset of (input, target) rows turned into instructions by a template."""

    path: str  # a data file, "builtin", or a hub dataset id
    input_field: str = "dialogue"
    target_field: str = "summary"
    template: str = "summarize"  # a template name or file (genlab prompt templates)
    weight: float = Field(default=1.0, gt=0)  # share of the multi-task mixture
    limit: int | None = Field(default=None, ge=1)


class DataConfig(Section):
    path: str  # the main task's data (or, for continued pre-training, raw text)
    input_field: str = "dialogue"
    target_field: str = "summary"
    text_field: str = "text"  # continued pre-training: the field holding the raw text
    template: str = "summarize"
    weight: float = Field(default=1.0, gt=0)
    limit: int | None = Field(default=None, ge=1)  # read only the first N rows
    validation_size: float = Field(default=0.1, gt=0)  # a fraction (< 1) or a row count held out
    split_seed: int = 0
    # The test split, scored once after training and never used for early stopping or choosing: a
    # separate file (test_target_field may name several references, summary1,summary2,summary3), or
    # test_size > 0 rows (a fraction < 1 or a count) held out of the main data, seeded, before validation.
    test: str | None = None
    test_size: float = Field(default=0, ge=0)
    test_target_field: str | None = None

    @model_validator(mode="after")
    def _one_test_split(self) -> DataConfig:
        if self.test is not None and self.test_size:
            raise ValueError("data.test and data.test_size both name a test split; give one of them")
        return self
    max_length: int = Field(default=512, ge=8)  # tokens per training row; longer rows are dropped, never cut
    block_size: int = Field(default=256, ge=8)  # continued pre-training: tokens per packed block
    chat: bool = True  # format prompts with the tokenizer's chat template, as evaluation does
    completion_only: bool = True  # loss on the target tokens only
    mixture: list[TaskSource] = Field(default_factory=list)  # more tasks trained together with the main one


class LoraConfig(Section):
    r: int = Field(default=8, ge=1)
    alpha: int = Field(default=16, ge=1)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["attention", "all-linear"] = "attention"


class PromptTuningConfig(Section):
    num_virtual_tokens: int = Field(default=20, ge=1, le=512)
    init_text: str | None = "Summarize the conversation."  # None: random initialisation


class SelectiveConfig(Section):
    # Layer indices to train (negative counts from the end); everything else is frozen.
    layers: list[int] = Field(default_factory=lambda: [-1])
    train_embeddings: bool = False
    train_head: bool = False  # the LM head (tied to the embeddings in many small models)


class TrainingConfig(Section):
    epochs: float = Field(default=1.0, gt=0)
    max_steps: int = Field(default=-1, ge=-1)  # > 0 overrides epochs
    batch_size: int = Field(default=4, ge=1)
    gradient_accumulation: int = Field(default=1, ge=1)
    learning_rate: float = Field(default=2e-4, gt=0, lt=1)
    schedule: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup: float = Field(default=0.0, ge=0)  # steps (>= 1) or a fraction of all steps (< 1)
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    eval_every: int = Field(default=50, ge=1)  # steps between validation losses
    save_every: int = Field(default=50, ge=1)  # steps between checkpoints
    keep_checkpoints: int = Field(default=2, ge=1)
    early_stopping_patience: int | None = Field(default=None, ge=1)  # evaluations without improvement
    group_by_length: bool = True  # batches of similar lengths: less padding, same examples per epoch
    gradient_checkpointing: bool = False
    seed: int = 42
    log_every: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _checkpoints_line_up_with_evaluations(self) -> TrainingConfig:
        if self.early_stopping_patience is not None and self.save_every % self.eval_every:
            raise ValueError(
                "early stopping keeps the best checkpoint, so save_every must be a multiple of eval_every "
                f"(got save_every={self.save_every}, eval_every={self.eval_every})"
            )
        return self


class EvaluationConfig(Section):
    enabled: bool = True  # score the validation split with the trained model afterwards
    metrics: list[str] = Field(default_factory=lambda: ["rouge"])
    limit: int | None = Field(default=None, ge=1)  # validation rows to generate for (None: all)
    max_new_tokens: int = Field(default=64, ge=1)
    batch_size: int = Field(default=8, ge=1)
    baseline: bool = False  # also score the untouched base model, for the improvement table
    # Catastrophic-forgetting check: a second, multiple-choice task (a builtin benchmark name such as
    # everyday-facts, or a task YAML file) scored before and after training.
    forgetting_task: str | None = None
    forgetting_limit: int | None = Field(default=None, ge=1)


class FinetuneRecipe(Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    model: str = "smollm2-135m-instruct"
    # A registered adapt method (genlab.registry, e.g. lora, full, prompt_tuning): looked up, and an unknown
    # name refused in one sentence listing the known ones, where the recipe runs (genlab finetune, the lifecycle).
    method: str = Field(default="lora", min_length=1)
    data: DataConfig
    lora: LoraConfig = Field(default_factory=LoraConfig)
    prompt_tuning: PromptTuningConfig = Field(default_factory=PromptTuningConfig)
    selective: SelectiveConfig = Field(default_factory=SelectiveConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    # Also log to MLflow while training (genlab.tracking). Left out of model_dump: where a run is
    # tracked does not change what it trains, so it is not part of the lineage config or a cache key.
    tracking: TrackingConfig | None = Field(default=None, exclude=True)
    description: str = ""

    @field_validator("method", mode="before")
    @classmethod
    def _method_spelling(cls, value: object) -> object:
        return value.replace("-", "_") if isinstance(value, str) else value


def work_dir(recipe: FinetuneRecipe) -> Path:
    """``$GENLAB_HOME/finetune/<name>``: the run's working folder (checkpoints until it completes)."""
    return genlab_home() / "finetune" / recipe.name


def finetune_checkpoints(recipe: FinetuneRecipe) -> Path:
    return checkpoints_dir("finetune", recipe.name)  # = work_dir(recipe) / "checkpoints"
