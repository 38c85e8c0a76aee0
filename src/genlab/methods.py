"""The one contract every method that trains or transforms a model follows.

A method (LoRA, full fine-tuning, PPO, DPO, a reward model, distillation, GRPO, ...) lives in one
folder of its own (``genlab/alignment/dpo/``, ``genlab/tuning/lora/``, ``genlab/optimize/distill/``)
whose ``__init__`` exports one :class:`Method` object named ``METHOD``; :mod:`genlab.registry` lists
them, one line each, and the CLI (``genlab align NAME``, ``genlab finetune``, ``genlab optimize
distill``) and the lifecycle (``align``/``adapt`` candidates) find methods there, never by a name in
a string. This is peft's pattern (one folder per tuner, registered in one place).

A method says:

- ``name`` and ``group`` (``adapt``, ``align`` or ``optimize``: where the CLI and the lifecycle offer it);
- ``recipe_schema``: the pydantic model its YAML recipe validates against;
- ``train(recipe, options) -> MethodResult``: the work; ``options`` (:class:`RunOptions`) carries the
  lineage store it must record into (never a store of its own), the recipe's folder, resume,
  progress and extra Trainer callbacks;
- ``memory_mode``: how :mod:`genlab.models.estimate` counts its training memory (``train``,
  ``lora``, ``qlora``, ``prompt-tuning``), so the lifecycle's select step estimates a planned
  candidate without a table of method names; ``None`` when no mode fits;
- ``data_fields``: the dotted recipe fields that name the files it reads (``data.path``, ``prompts``),
  so the lifecycle hashes and records them without knowing the method;
- ``checkpoints``: the folder where a run of a recipe keeps its checkpoints until it completes (the
  one its training writes to), so ``--resume`` and the lifecycle's resume work alike for every
  method; ``None`` for a one-shot transform (quantisation, pruning), which refuses ``resume``;
- ``help``: one line for ``--help``.

A method folder's ``__init__`` imports only light modules at its top: the recipe schema (a
``recipe.py`` of pydantic models) and this contract. Its ``train`` imports the module that does the
work inside the function, when the method runs. The registry, and with it the CLI (``genlab --help``
and every command), imports every method folder at start-up, and trl, transformers, peft and torch
take about 10 s to import; ``tests/unit/test_cli_startup.py`` checks that the CLI starts without them.

Callers use :meth:`Method.run` (``run(recipe, *, store, ...)``), which validates a raw mapping
against the schema first, so a bad value is one sentence naming the field, and honours a recipe's
``tracking:`` section (MLflow, :mod:`genlab.tracking`) for every method alike.

Every method returns one :class:`MethodResult`: run id, output path and kind (adapter, model or
dataset), metrics, loss history and its table for the terminal. Written by hand: no maintained
library offers a registry of training methods across trl, peft and transformers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from genlab.errors import InvalidValueError, invalid_value
from genlab.lineage.store import LineageStore
from genlab.tracking.live import live_tracking

OutputKind = Literal["adapter", "model", "dataset"]  # what a method leaves behind
MethodGroup = Literal["adapt", "align", "optimize"]  # the command (and lifecycle section) that offers it
OUTPUT_KINDS: tuple[str, ...] = ("adapter", "model", "dataset")


@dataclass(frozen=True)
class TerminalTable:
    """What ``genlab`` prints for a result: a title, column names and rows of cells."""

    title: str
    columns: list[str]
    rows: list[list[Any]]

    def as_tuple(self) -> tuple[str, list[str], list[list[Any]]]:
        return self.title, self.columns, self.rows


@dataclass
class MethodResult:
    """What every method returns, whatever it trained.

    ``details`` holds the method's own figures as JSON (DPO's before/after preference metrics, a
    reward model's per-kind accuracy, PPO's rollout statistics) for reports and ``--json``.
    """

    method: str
    run_id: str
    output_path: str
    output_kind: OutputKind
    metrics: dict[str, float]
    loss_history: list[dict[str, float]]
    table: TerminalTable
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.output_kind not in OUTPUT_KINDS:
            raise ValueError(f"output_kind={self.output_kind!r}: expected one of {', '.join(OUTPUT_KINDS)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunOptions:
    """How a method runs, apart from its recipe; every field has the same meaning for all methods."""

    store: LineageStore  # record into this store: a method never opens its own
    recipe_dir: Path | None = None  # relative data paths in the recipe are read from here (after the cwd)
    resume: bool = False  # continue from the newest complete checkpoint of the same recipe
    progress: bool = True  # progress bars on stderr
    callbacks: tuple[Any, ...] = ()  # extra transformers TrainerCallbacks (tracking, tests)

    def keywords(self) -> dict[str, Any]:
        """The options as keyword arguments: ``run_dpo(recipe, **options.keywords())``."""
        return {"store": self.store, "recipe_dir": self.recipe_dir, "resume": self.resume, "progress": self.progress, "callbacks": self.callbacks}


Train = Callable[[Any, RunOptions], MethodResult]


@dataclass(frozen=True)
class Method:
    """One method that trains or transforms a model; see the module docstring."""

    name: str
    group: MethodGroup
    recipe_schema: type[BaseModel]
    train: Train
    help: str
    data_fields: tuple[str, ...] = ()  # dotted recipe fields naming files it reads, e.g. "data.path"
    check_available: Callable[[], None] | None = None  # raises a GenlabError when this machine cannot run it (QLoRA without CUDA)
    generates_text: bool = True  # its output is a model that writes text (a lifecycle candidate); a reward model's is not
    checkpoints: Callable[[Any], Path] | None = None  # recipe -> its run's checkpoint folder; None: keeps none
    memory_mode: str | None = None  # genlab.models.estimate's mode for its training memory, if one fits

    def checkpoint_folder(self, recipe: BaseModel | Mapping[str, Any]) -> Path | None:
        """Where a run of ``recipe`` keeps its checkpoints until it completes (None: this method keeps none)."""
        return None if self.checkpoints is None else self.checkpoints(self.validate(recipe))

    def validate(self, recipe: BaseModel | Mapping[str, Any]) -> Any:
        """The recipe as ``recipe_schema``: a mapping is validated, a model of another class refused."""
        if isinstance(recipe, self.recipe_schema):
            return recipe
        if isinstance(recipe, BaseModel):
            raise InvalidValueError(
                f"method {self.name!r} takes a {self.recipe_schema.__name__} recipe, not a {type(recipe).__name__}."
            )
        try:
            return self.recipe_schema.model_validate(dict(recipe))
        except ValidationError as error:
            raise invalid_value(error, prefix=self.name) from None

    def run(
        self,
        recipe: BaseModel | Mapping[str, Any],
        *,
        store: LineageStore,
        recipe_dir: Path | None = None,
        resume: bool = False,
        progress: bool = True,
        callbacks: Sequence[Any] = (),
    ) -> MethodResult:
        """Validate ``recipe``, run the method, recording into ``store``; return its :class:`MethodResult`."""
        options = RunOptions(store, recipe_dir, resume, progress, tuple(callbacks))
        recipe = self.validate(recipe)
        if resume and self.checkpoints is None:
            raise InvalidValueError(f"{self.name} keeps no checkpoints, so there is nothing to resume: run it again without --resume.")
        if self.check_available is not None:
            self.check_available()  # before loading anything
        with live_tracking(getattr(recipe, "tracking", None), store):  # a recipe's tracking: section, if it has one
            result = self.train(recipe, options)
        if result.method != self.name:
            raise RuntimeError(f"method {self.name!r} returned a result labelled {result.method!r}")
        return result

    def data_paths(self, recipe: BaseModel) -> dict[str, str]:
        """The files ``recipe`` names in ``data_fields`` (as written: resolving them is the caller's)."""
        found = {}
        for dotted in self.data_fields:
            value: Any = recipe
            for part in dotted.split("."):
                value = getattr(value, part, None)
            if isinstance(value, (str, Path)):
                found[dotted] = str(value)
        return found

