"""The lifecycle recipe: one YAML file from scope to deployment, validated by pydantic.

A recipe declares the stages in order; each section is optional except ``scope``::

    scope     the use case, the task, the metric of record and the target score
    data      the task's data, split once into training rows and held-out rows
    select    the model, with memory estimates for the planned adaptations
    prompt    the zero/one/few-shot baseline on the held-out rows
    adapt     candidates by name, each a fine-tuning recipe (full, LoRA, prompt tuning, ...)
    align     candidates by name, each a PPO, DPO or Constitutional AI recipe
    evaluate  every candidate and the base on the same held-out rows, compared with the base
    optimise  quantise or prune the chosen candidate, measured against it
    deploy    a serve configuration for the chosen artifact (and optionally start it)

An ``adapt`` or ``align`` candidate holds the settings of the library's own recipe
(:class:`genlab.tuning.recipe.FinetuneRecipe`, :class:`genlab.alignment.ppo.lab.PpoRecipe`, ...),
optionally on top of a recipe file named by ``recipe:`` (its settings first, the candidate's over
them). The lifecycle fills in what must agree across stages -- the candidate's name, the model from
``select``, the training data and template from ``data`` -- and turns each library recipe's own
evaluation off, since ``evaluate`` scores every candidate on the same rows.

Relative paths (data files, referenced recipes) are read from the current folder first, then from
the recipe's folder (as ``genlab finetune`` does). Overrides are dotted ``key=value`` pairs:
``prompt.shots=[0,1]``, ``adapt.lora.training.max_steps=2``, ``optimise=null`` (drop a stage), or a
bare key that names exactly one setting (``held_out=8``).
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from genlab.config import RecipeError, parse_override, read_recipe_file, set_setting
from genlab.errors import validation_error_message
from genlab.export.quantize import QUANTS
from genlab.models.packs import DEFAULT_GENERATOR
from genlab.optimize.quantize.recipe import QuantizeConfig
from genlab.registry import get_method, method_names, methods
from genlab.tracking.config import TrackingConfig

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
BUILTIN_RECIPES = {"lifecycle-demo": Path(__file__).with_name("recipes") / "lifecycle-demo.yaml"}
RESERVED_CANDIDATES = ("base", "best")
FREE_FORM_SECTIONS = ("adapt", "align")  # their keys are candidate names, their values library recipes
# Scores where a lower value is the better one (everything else: higher is better).
LOWER_IS_BETTER = ("toxicity", "toxic_fraction", "ece", "perplexity", "loss")
# Metric families `evaluate.metrics` may name -> the scores each produces (genlab.evaluation.generation_metrics).
METRIC_SCORES = {
    "rouge": ("rouge1", "rouge2", "rougeL", "rougeLsum"),
    "bleu": ("bleu", "chrf"),
    "toxicity": ("toxicity_mean", "toxicity_max", "toxic_fraction"),
    "exact_match": ("exact_match",),
    "length": (),
}


def lower_is_better(metric: str) -> bool:
    return metric.startswith(LOWER_IS_BETTER)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScopeConfig(Section):
    use_case: str = ""  # who the model is for and what it must do, in a sentence or two
    task: Literal["summarize", "generate"] = "summarize"
    metric: str = "rouge1"  # the metric of record: candidates are ranked by it
    target: float | None = None  # the score that counts as success (0-1 for scores such as ROUGE)


class DataConfig(Section):
    path: str = "builtin"  # a JSONL/CSV/Parquet file, a builtin set ("builtin", "builtin:heated") or a hub id
    input_field: str = "dialogue"
    target_field: str = "summary"
    template: str = "summarize"  # the prompt template every stage uses (genlab prompt templates)
    chat: bool = True  # prompts through the tokenizer's chat template, in every stage alike
    limit: int | None = Field(default=None, ge=1)  # read only the first N rows
    held_out: float = Field(default=0.2, gt=0)  # a fraction (< 1) or a row count, never trained on
    split_seed: int = 0
    # The test split, scored once at the end (base and best) and never used to choose: a separate file
    # (DialogSum-format test files) or, with test_size > 0, a seeded part of the held-out rows (a
    # fraction < 1 or a row count); the rest of the held-out rows are the validation split.
    test: str | None = None
    test_size: float = Field(default=0, ge=0)
    test_target_field: str | None = None  # the test file's reference field(s), e.g. summary1,summary2,summary3

    @model_validator(mode="after")
    def _one_test_split(self) -> DataConfig:
        if self.test is not None and self.test_size:
            raise ValueError("data.test and data.test_size both name a test split; give one of them")
        if self.test_target_field is not None and self.test is None:
            raise ValueError("data.test_target_field applies to a separate test file: set data.test too")
        return self


class SelectConfig(Section):
    model: str = DEFAULT_GENERATOR  # pack name, model folder, GGUF file or hub id
    dtype: Literal["fp32", "fp16", "bf16"] = "fp32"  # for the memory estimates
    infer_seq_len: int = Field(default=512, ge=1)  # tokens per sequence served (prompt + answer), for the KV cache


class PromptConfig(Section):
    shots: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    selection: Literal["first", "random", "similar"] = "first"  # how solved examples are chosen from training rows
    limit: int | None = Field(default=None, ge=1)  # held-out rows to prompt (None: all)
    max_new_tokens: int = Field(default=64, ge=1)
    batch_size: int = Field(default=8, ge=1)

    @model_validator(mode="after")
    def _shots_not_negative(self) -> PromptConfig:
        if any(shot < 0 for shot in self.shots):
            raise ValueError(f"prompt.shots={self.shots} must hold counts >= 0, like [0, 1, 2]")
        return self


class EvaluateConfig(Section):
    metrics: list[str] = Field(default_factory=lambda: ["rouge"], min_length=1)
    limit: int | None = Field(default=None, ge=1)  # held-out rows to score (None: all)
    max_new_tokens: int = Field(default=64, ge=1)
    batch_size: int = Field(default=8, ge=1)
    baseline_shots: int = Field(default=0, ge=0)  # the base model's prompt (the candidates are scored zero-shot)
    samples: int = Field(default=3, ge=0)  # outputs shown side by side in the report
    # lm-eval tasks scored for the base and every candidate beside the metrics (a forgetting check on a
    # standard task): genlab's builtin ones (everyday-facts) or tasks in harness_include folders.
    harness: list[str] = Field(default_factory=list)
    harness_include: list[str] = Field(default_factory=list)
    harness_limit: int | None = Field(default=None, ge=1)
    harness_num_fewshot: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _known_metrics(self) -> EvaluateConfig:
        unknown = [name for name in self.metrics if name not in METRIC_SCORES]
        if unknown:
            raise ValueError(f"evaluate.metrics has {unknown[0]!r}; choose from {', '.join(METRIC_SCORES)}")
        return self


class OptimiseConfig(Section):
    candidate: str = "best"  # "best" (by the metric of record), "base", or a candidate's name
    technique: Literal["quantize", "prune"] = "quantize"  # a registered optimize method that needs no training data
    quantize: QuantizeConfig = Field(default_factory=QuantizeConfig)
    prune: dict[str, Any] = Field(default_factory=dict)  # genlab.optimize.prune.recipe.PruneConfig settings
    measure: bool = True  # measure the candidate and the result (size, memory, tokens/s, ROUGE-1), each in a fresh process
    eval_limit: int = Field(default=10, ge=1)  # held-out rows scored by each measurement
    max_new_tokens: int = Field(default=64, ge=1)
    speed_prompts: int = Field(default=4, ge=1)  # prompts timed at batch 1
    speed_tokens: int = Field(default=32, ge=1)  # new tokens per timed prompt


class DeployConfig(Section):
    # the optimised model (if the recipe optimises), the candidate, or the candidate exported to GGUF (llama.cpp, Ollama)
    artifact: Literal["optimized", "candidate", "gguf"] = "optimized"
    quant: str = "f16"  # artifact gguf: f32, f16, q8_0, or a llama.cpp k-quant such as q4_k_m (genlab.export.quantize)
    candidate: str = "best"  # when serving a candidate: "best", "base" or a candidate's name
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    start: bool = False  # start `genlab serve` in the background and wait for /health
    start_timeout: float = Field(default=120.0, gt=0)  # seconds to wait for /health
    # a model without adapters: None = the fastest backend that can serve it (onnxruntime-genai, then ctranslate2)
    backend: Literal["onnxruntime-genai", "ctranslate2"] | None = None

    @field_validator("quant")
    @classmethod
    def _known_quant(cls, value: str) -> str:
        if value.lower() not in QUANTS:
            raise ValueError(f"choose one of {', '.join(QUANTS)}")
        return value.lower()


class LifecycleRecipe(Section):
    name: str = Field(min_length=1, pattern=NAME_PATTERN)
    description: str = ""
    scope: ScopeConfig
    data: DataConfig = Field(default_factory=DataConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    prompt: PromptConfig | None = None
    adapt: dict[str, dict[str, Any]] = Field(default_factory=dict)
    align: dict[str, dict[str, Any]] = Field(default_factory=dict)
    evaluate: EvaluateConfig | None = None
    optimise: OptimiseConfig | None = Field(default=None, validation_alias=AliasChoices("optimise", "optimize"))
    deploy: DeployConfig | None = None
    # A parent MLflow run for the pass, its steps nested, training logged live (genlab.tracking).
    # Left out of model_dump: where runs are tracked changes no step's output or cache key.
    tracking: TrackingConfig | None = Field(default=None, exclude=True)

    _finetune: dict[str, Any] = PrivateAttr(default_factory=dict)  # candidate -> FinetuneRecipe
    _align: dict[str, tuple[str, str, Any]] = PrivateAttr(default_factory=dict)  # candidate -> (method, start_from, recipe)

    @model_validator(mode="after")
    def _candidates_and_references(self) -> LifecycleRecipe:
        for name in [*self.adapt, *self.align]:
            _check_candidate_name(name)
        both = set(self.adapt) & set(self.align)
        if both:
            raise ValueError(f"candidate name {sorted(both)[0]!r} is used in both adapt and align; names must differ")
        self._finetune = {name: self._build_finetune(name, raw) for name, raw in self.adapt.items()}
        self._align = {name: self._build_align(name, raw) for name, raw in self.align.items()}
        self._check_references()
        return self

    # --- the library recipes behind the candidates ------------------------------------------------

    def finetune_recipe(self, name: str) -> Any:
        """The :class:`FinetuneRecipe` of adapt candidate ``name`` (its data path is set by the adapt stage)."""
        return self._finetune[name]

    def align_recipe(self, name: str) -> tuple[str, str, Any]:
        """``(method, start_from, recipe)`` of align candidate ``name``."""
        return self._align[name]

    def candidate_names(self) -> list[str]:
        return [*self.adapt, *self.align]

    def _build_finetune(self, name: str, raw: Mapping[str, Any]) -> Any:
        from genlab.tuning.recipe import FinetuneRecipe

        settings = {key: value for key, value in raw.items() if key not in ("recipe", "recipe_dir")}
        data = dict(settings.get("data") or {})
        data.update(
            path="lifecycle:train", input_field=self.data.input_field, target_field=self.data.target_field,
            template=self.data.template, chat=self.data.chat,
        )  # fmt: skip
        evaluation = {**(settings.get("evaluation") or {}), "enabled": False, "baseline": False}
        settings.update(name=f"{self.name}-{name}", model=self.select.model, data=data, evaluation=evaluation)
        recipe = _validated(FinetuneRecipe, settings, f"adapt.{name}")
        known = method_names("adapt")
        if recipe.method not in known:
            raise ValueError(f"adapt.{name}: method={recipe.method!r} is not allowed: choose one of {', '.join(known)}")
        return recipe

    def _build_align(self, name: str, raw: Mapping[str, Any]) -> tuple[str, str, Any]:
        settings = {key: value for key, value in raw.items() if key not in ("recipe", "recipe_dir")}
        method = settings.pop("method", None)
        candidates = [known.name for known in methods("align") if known.generates_text]
        if method not in candidates:
            raise ValueError(f"align.{name}.method={method!r} is not allowed: choose one of {', '.join(candidates)}")
        start_from = settings.pop("start_from", "base")
        schema = get_method(method, "align").recipe_schema
        settings.update(name=f"{self.name}-{name}", model=self.select.model)
        if _reads_task_rows(schema):  # prompts from the task's training rows unless the candidate names other data
            data = dict(settings.get("data") or {})
            data.setdefault("path", "lifecycle:train")
            data.update(input_field=self.data.input_field, target_field=self.data.target_field, template=self.data.template)
            settings["data"] = data
        return method, start_from, _validated(schema, settings, f"align.{name}")

    def _check_references(self) -> None:
        for name, (method, start_from, _) in self._align.items():
            if start_from != "base" and start_from not in self.adapt:
                raise ValueError(
                    f"align.{name}.start_from={start_from!r} is not allowed: give 'base' or an adapt candidate "
                    f"({', '.join(self.adapt) or 'there are none'})"
                )
            if method == "constitutional" and start_from != "base":
                raise ValueError(f"align.{name}.start_from: constitutional alignment starts from the base model only")
        known = ["base", *self.candidate_names()]
        if self.optimise is not None:
            _check_choice("optimise.candidate", self.optimise.candidate, known, self.evaluate is not None)
        if self.deploy is not None:
            _check_choice("deploy.candidate", self.deploy.candidate, known, self.evaluate is not None)
        if self.evaluate is not None:
            produced = {score for family in self.evaluate.metrics for score in METRIC_SCORES[family]}
            harness_task = self.scope.metric.split("/", 1)[0] if "/" in self.scope.metric else None
            if self.scope.metric not in produced and harness_task not in self.evaluate.harness:
                raise ValueError(
                    f"scope.metric={self.scope.metric!r} is not among the scores evaluate.metrics produces "
                    f"({', '.join(sorted(produced))})"
                )


def _check_candidate_name(name: str) -> None:
    import re

    if name in RESERVED_CANDIDATES or not re.match(NAME_PATTERN, name):
        raise ValueError(
            f"candidate name {name!r} is not allowed: use letters, digits, '.', '_' or '-', and not base or best"
        )


def _check_choice(field: str, value: str, known: list[str], has_evaluate: bool) -> None:
    if value == "best":
        if not has_evaluate:
            raise ValueError(f"{field}='best' needs an evaluate section to rank the candidates; name one instead")
        return
    if value not in known:
        raise ValueError(f"{field}={value!r} is not allowed: choose best, {', '.join(known)}")


def _reads_task_rows(schema: type[BaseModel]) -> bool:
    """Whether a method's recipe reads (input, target) rows of the task (PPO's prompts), not pairs of its own."""
    data = schema.model_fields.get("data")
    fields = getattr(data.annotation, "model_fields", {}) if data is not None else {}
    return {"path", "input_field", "target_field", "template"} <= set(fields)


def _validated(schema: type[BaseModel], settings: Mapping[str, Any], where: str) -> Any:
    try:
        return schema.model_validate(settings)
    except ValidationError as error:
        raise ValueError(validation_error_message(error, prefix=where).removesuffix(".")) from None


# --- reading a recipe ----------------------------------------------------------------------------------


def find_recipe(name_or_path: str | Path) -> Path:
    """A recipe file, or a builtin recipe by name (``lifecycle-demo``)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if str(name_or_path) in BUILTIN_RECIPES:
        return BUILTIN_RECIPES[str(name_or_path)]
    raise RecipeError(f"no such recipe file: {path} (builtin lifecycle recipes: {', '.join(BUILTIN_RECIPES)}).")


def load_lifecycle_recipe(name_or_path: str | Path, overrides: Iterable[str] = ()) -> tuple[LifecycleRecipe, Path]:
    """Read, override and validate a lifecycle recipe; return it and the folder its relative paths start from."""
    path = find_recipe(name_or_path)
    raw = apply_overrides(read_recipe_file(path), overrides)
    return validate_lifecycle_recipe(raw, path.parent, where=f"recipe {path}"), path.parent


def validate_lifecycle_recipe(raw: Mapping[str, Any], recipe_dir: Path | None, *, where: str = "recipe") -> LifecycleRecipe:
    resolved = _with_referenced_recipes(raw, recipe_dir, where)
    try:
        return LifecycleRecipe.model_validate(resolved)
    except ValidationError as error:
        raise RecipeError(validation_error_message(error, prefix=where)) from None


def _with_referenced_recipes(raw: Mapping[str, Any], recipe_dir: Path | None, where: str) -> dict[str, Any]:
    """A copy of ``raw`` where each candidate's ``recipe:`` file lies under its own settings."""
    from genlab.tuning.assemble import resolve_data_path

    result = copy.deepcopy(dict(raw))
    for section in FREE_FORM_SECTIONS:
        candidates = result.get(section)
        if candidates is None:
            result.pop(section, None)
            continue
        if not isinstance(candidates, dict):
            raise RecipeError(f"{where}: {section} must map candidate names to their settings.")
        for name, settings in candidates.items():
            if not isinstance(settings, dict):
                raise RecipeError(f"{where}: {section}.{name} must be a mapping of settings.")
            settings["recipe_dir"] = str(recipe_dir) if recipe_dir is not None else None
            reference = settings.get("recipe")
            if reference is None:
                continue
            file = Path(resolve_data_path(str(reference), recipe_dir))
            if not file.is_file():
                raise RecipeError(f"{where}: {section}.{name}.recipe={reference!r} is not a recipe file.")
            merged = deep_merge(read_recipe_file(file), settings)
            merged["recipe_dir"] = str(file.parent)  # the referenced recipe's own relative paths start there
            candidates[name] = merged
    return result


def candidate_recipe_dir(recipe: LifecycleRecipe, section: str, name: str) -> Path | None:
    """The folder a candidate's relative paths start from: its referenced recipe's, else the lifecycle recipe's."""
    folder = getattr(recipe, section)[name].get("recipe_dir")
    return Path(folder) if folder else None


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: mappings merge key by key, anything else is replaced."""
    result = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


# --- overrides -----------------------------------------------------------------------------------------


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``raw`` with each ``key=value`` set (see the module docstring for the keys)."""
    result = copy.deepcopy(dict(raw))
    known = setting_paths(LifecycleRecipe)
    for text in overrides:
        key, value = parse_override(text)
        set_setting(result, _resolve_override_key(key, known), value, override=text)
    return result


def _resolve_override_key(key: str, known: list[str]) -> str:
    if key in known:
        return key
    parts = key.split(".")
    if parts[0] in FREE_FORM_SECTIONS and len(parts) >= 3:
        return key  # adapt.<candidate>.<setting ...>: checked when the candidate's recipe is validated
    if len(parts) == 1:
        matches = [path for path in known if path.rsplit(".", 1)[-1] == key]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise RecipeError(f"override key {key!r} is ambiguous: write one of {', '.join(matches)}.")
    raise RecipeError(
        f"override key {key!r} is not a lifecycle setting (candidates are set as adapt.NAME.SETTING or align.NAME.SETTING)."
    )


def setting_paths(schema: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted path of ``schema``, optional sections expanded too."""
    paths = []
    for name, info in schema.model_fields.items():
        path = f"{prefix}{name}"
        paths.append(path)
        section = _section_type(info.annotation)
        if section is not None:
            paths.extend(setting_paths(section, f"{path}."))
    return paths


def _section_type(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        sections = [arg for arg in typing.get_args(annotation) if isinstance(arg, type) and issubclass(arg, BaseModel)]
        return sections[0] if len(sections) == 1 else None
    return None
