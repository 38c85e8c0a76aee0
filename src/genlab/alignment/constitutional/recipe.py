"""The recipe of ``genlab align constitutional`` (:class:`ConstitutionalRecipe`).

It imports no training library: the registry and the CLI import it at start-up (see :mod:`genlab.methods`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from genlab.alignment.dpo.recipe import (
    DpoLoraConfig,
    DpoRecipe,
    DpoTrainingConfig,
    LossType,
    PairsDataConfig,
)
from genlab.tracking.config import TrackingConfig
from genlab.tuning.recipe import Section


class GenerationConfig(Section):
    """How the model writes answers, critiques and revisions (and samples the two answers to compare)."""

    max_new_tokens: int = Field(default=96, ge=1, le=4096)
    temperature: float = Field(default=0.7, ge=0, le=5)  # AI feedback needs > 0: two different answers
    top_p: float = Field(default=0.9, gt=0, le=1)
    top_k: int = Field(default=0, ge=0)
    repetition_penalty: float = Field(default=1.1, gt=0)  # small models loop without it
    seed: int = 0
    batch_size: int = Field(default=8, ge=1)

    def settings(self) -> Any:
        from genlab.generation.settings import GenerationSettings

        return GenerationSettings(**self.model_dump(exclude={"batch_size"}))


class StagesConfig(Section):
    critique_revise: bool = True
    ai_feedback: bool = True
    dpo: bool = True  # needs ai_feedback: DPO trains on its pairs


class JudgeConfig(Section):
    both_orders: bool = True  # ask with the answers swapped too and average: cancels position bias
    min_confidence: float = Field(default=0.5, ge=0.5, lt=1)  # pairs the judge is less sure of are dropped


class ConstitutionalDpoConfig(Section):
    validation_size: float = Field(default=0.25, ge=0)  # a fraction (< 1) or a count of AI pairs held out
    split_seed: int = 0
    max_length: int = Field(default=512, ge=8)
    lora: DpoLoraConfig = Field(default_factory=DpoLoraConfig)
    beta: float = Field(default=0.1, gt=0)
    loss_type: LossType = "sigmoid"
    training: DpoTrainingConfig = Field(default_factory=DpoTrainingConfig)


class ConstitutionalRecipe(Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    model: str = "smollm2-135m-instruct"
    constitution: str = "constitution.yaml"  # relative paths: from the current folder, else the recipe's
    prompts: str = "data/red-team-prompts.jsonl"
    limit: int | None = Field(default=None, ge=1)  # use only the first N prompts
    chat: bool = True  # conversations through the tokenizer's chat template
    seed: int = 0  # which principle each prompt is critiqued and judged by
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    stages: StagesConfig = Field(default_factory=StagesConfig)
    dpo: ConstitutionalDpoConfig = Field(default_factory=ConstitutionalDpoConfig)
    tracking: TrackingConfig | None = Field(default=None, exclude=True)  # also log to MLflow (genlab.tracking); not in model_dump
    description: str = ""

    @model_validator(mode="after")
    def _stages_fit_together(self) -> ConstitutionalRecipe:
        stages = self.stages
        if not (stages.critique_revise or stages.ai_feedback or stages.dpo):
            raise ValueError("stages turns every stage off: enable critique_revise, ai_feedback or dpo")
        if stages.dpo and not stages.ai_feedback:
            raise ValueError("stages.dpo needs stages.ai_feedback, because DPO trains on the AI preference pairs")
        if stages.ai_feedback and self.generation.temperature == 0:
            raise ValueError(
                "stages.ai_feedback samples two answers per prompt, so generation.temperature must be above 0"
            )
        return self

    def dpo_recipe(self, pairs_path: Path) -> DpoRecipe:
        """The DPO stage as a DPO recipe on the AI pairs file."""
        settings = self.dpo
        data = PairsDataConfig(
            path=str(pairs_path), validation_size=settings.validation_size, split_seed=settings.split_seed,
            max_length=settings.max_length, chat=self.chat,
        )  # fmt: skip
        return DpoRecipe(
            name=f"{self.name}-dpo", model=self.model, data=data, lora=settings.lora, beta=settings.beta,
            loss_type=settings.loss_type, training=settings.training,
        )  # fmt: skip
