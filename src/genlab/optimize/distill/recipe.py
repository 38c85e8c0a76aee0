"""The recipe of ``genlab optimize distill`` (:class:`DistillRecipe`).

It imports no training library: the registry and the CLI import it at start-up (see :mod:`genlab.methods`).
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from genlab.home import genlab_home
from genlab.optimize.measure import Metric
from genlab.tracking.config import TrackingConfig
from genlab.training.checkpoints import checkpoints_dir
from genlab.tuning.recipe import DataConfig, TrainingConfig


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StudentConfig(Section):
    layers: int | None = Field(default=None, ge=1)  # layers per stack kept from the teacher; None: half
    model: str | None = None  # or: a smaller model (name or folder) that shares the teacher's tokenizer

    @model_validator(mode="after")
    def _one_way(self) -> StudentConfig:
        if self.layers is not None and self.model is not None:
            raise ValueError("give student.layers (drop teacher layers) or student.model (a smaller model), not both")
        return self


class LossConfig(Section):
    temperature: float = Field(default=2.0, gt=0)  # softens both distributions (Hinton et al. use 1-20)
    alpha: float = Field(default=0.5, ge=0)  # weight of the ground-truth cross-entropy beside T^2 * KL


class MeasureConfig(Section):
    enabled: bool = True  # False: train and save the student only, without measuring teacher and student
    data: str | None = None  # None: the rows held out of data.path (never trained on)
    metric: Metric = "rouge1"
    limit: int = Field(default=50, ge=1)  # examples scored
    max_new_tokens: int = Field(default=64, ge=1)
    batch_size: int = Field(default=8, ge=1)
    speed_prompts: int = Field(default=4, ge=1)
    speed_tokens: int = Field(default=32, ge=1)


class DistillRecipe(Section):
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # None: from the teacher
    teacher: str = "smollm2-135m-instruct"
    student: StudentConfig = Field(default_factory=StudentConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    data: DataConfig = Field(default_factory=lambda: DataConfig(path="builtin"))
    # Full-weight training of every student parameter: a lower rate than LoRA's default.
    training: TrainingConfig = Field(default_factory=lambda: TrainingConfig(learning_rate=1e-4, save_every=25))
    evaluation: MeasureConfig = Field(default_factory=MeasureConfig)
    output: str | None = None  # the student's folder; None: $GENLAB_HOME/optimized/<name>
    tracking: TrackingConfig | None = Field(default=None, exclude=True)  # also log to MLflow (genlab.tracking); not in model_dump
    description: str = ""

    def run_name(self) -> str:
        if self.name:
            return self.name
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(self.teacher.rstrip("/")).name).strip("-.") or "model"
        if self.student.model:
            student = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(self.student.model.rstrip("/")).name).strip("-.")
            return f"{stem}-distill-{student}"
        return f"{stem}-distill-{self.student.layers or 'half'}"


def work_dir(name: str) -> Path:
    """``$GENLAB_HOME/distill/<run name>``: the run's working folder (checkpoints until it completes)."""
    return genlab_home() / "distill" / name


def distill_checkpoints(recipe: DistillRecipe) -> Path:
    return checkpoints_dir("distill", recipe.run_name())  # = work_dir(recipe.run_name()) / "checkpoints"
