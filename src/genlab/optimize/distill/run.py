"""Distil a teacher into a smaller student and measure both: ``genlab optimize distill``.

The student is the teacher with fewer layers, initialised from the teacher's own layers, or a smaller
model sharing its tokenizer (:mod:`genlab.optimize.distill.student`). It is trained with the
knowledge distillation loss of Hinton et al. 2015, ``T^2 * KL(teacher || student) + alpha * CE``
on the target tokens (:mod:`genlab.optimize.distill.loss`), on (input, target) rows built exactly as
the finetune stage builds them (:mod:`genlab.tuning.data`): a summarisation model learns the summary
tokens of chat-formatted prompts, as evaluation will prompt it.

A run, recorded in lineage as kind ``optimize``:

1. loads the teacher and splits the data (seeded) into training rows and held-out rows; the held-out
   rows are written to the run's folder and are what quality is measured on, unless ``eval_data``
   names other data;
2. trains with transformers' ``Trainer``: checkpoints with optimizer, scheduler and RNG state every
   ``training.save_every`` steps in ``$GENLAB_HOME/distill/<name>/checkpoints``, so a crash, a kill or
   Ctrl-C loses at most that many steps and ``resume=True`` continues where it stopped;
3. saves the student as a plain transformers folder with a ``genlab_optimized.json`` manifest
   (``$GENLAB_HOME/optimized/<name>`` unless ``output`` says where);
4. measures teacher and student, each in a fresh process (:mod:`genlab.optimize.measure`), and
   returns their :class:`~genlab.optimize.report.OptimizationReport`.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genlab.errors import InvalidValueError
from genlab.home import genlab_home
from genlab.lineage import LineageStore, record_run
from genlab.optimize.distill.recipe import DistillRecipe, distill_checkpoints, work_dir
from genlab.optimize.measure import EvalSpec
from genlab.training.saving import free_folder
from genlab.training.session import LOSS_METRICS, TrainedRun, TrainerSession, last_value


@dataclass
class DistillResult:
    run_id: str
    folder: str  # the student's model folder
    details: dict[str, Any]  # layers kept, steps, losses, alpha, temperature, ...
    loss_history: list[dict[str, float]] = field(default_factory=list)
    report: Any = None  # OptimizationReport (teacher vs student), when measured

    def to_dict(self) -> dict[str, Any]:
        if self.report is not None:
            return self.report.to_dict()
        return {"method": "distill", "run_id": self.run_id, "artifact": self.folder, "details": self.details}


# The student's logged losses -> the run's metric names (DistillationTrainer logs soft and hard parts).
DISTILL_METRICS = {**LOSS_METRICS, "soft_loss": "soft_loss", "hard_loss": "hard_loss"}


def distill(
    recipe: DistillRecipe,
    *,
    store: LineageStore,
    resume: bool = False,
    recipe_dir: Path | None = None,
    progress: bool = True,
    measure_models: bool = True,
    callbacks: Sequence[Any] = (),
) -> DistillResult:
    """Train the student, save it, and (``measure_models``) measure it against the teacher; see the module docstring."""
    name = recipe.run_name()
    measure_models = measure_models and recipe.evaluation.enabled
    session = TrainerSession(
        distill_checkpoints(recipe), name=name, resume=resume, progress=progress, callbacks=callbacks,
        metric_names=DISTILL_METRICS,
    )  # fmt: skip
    if measure_models and recipe.evaluation.data:  # the default, the held-out rows, is written by training
        eval_spec(recipe, Path(recipe.evaluation.data)).check_data()
    output = _output_folder(recipe, name)
    start_from = session.start_from
    config = {"method": "distill", "recipe": recipe.model_dump(), "resume_from": str(start_from) if start_from else None}
    with record_run("optimize", config, store=store) as run:
        session.record_into(run)
        result = _distill(recipe, name, run, output, session, recipe_dir)
        if measure_models:
            result.report = _measure(recipe, run, result)
            run.log_metrics(result.report.metrics())
    return result


def _output_folder(recipe: DistillRecipe, name: str) -> Path:
    if recipe.output is None:
        return free_folder(genlab_home() / "optimized", name)
    output = Path(recipe.output).expanduser()
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise InvalidValueError(f"output={str(output)!r} already exists and is not empty; give a new folder.")
    return output


def _distill(
    recipe: DistillRecipe,
    name: str,
    run: Any,
    output: Path,
    session: TrainerSession,
    recipe_dir: Path | None,
) -> DistillResult:
    from transformers import set_seed

    from genlab.data.builtin import source_file
    from genlab.models.load import load_model
    from genlab.optimize.artifact import optimized_folder
    from genlab.tuning.assemble import assemble, write_validation_file
    from genlab.tuning.recipe import EvaluationConfig, FinetuneRecipe

    teacher = load_model(recipe.teacher)
    if teacher.path is not None:
        run.use(teacher.path, "model", {"model": teacher.name, "role": "teacher"})
    set_seed(recipe.training.seed)
    student, layers = _student(recipe, teacher, run)
    # The finetune stage's data and training arguments, for the same rows, prompts and checkpoints.
    as_finetune = FinetuneRecipe(
        name=name, model=recipe.teacher, method="full", data=recipe.data, training=recipe.training,
        evaluation=EvaluationConfig(enabled=False),
    )  # fmt: skip
    data = assemble(as_finetune, teacher, recipe_dir)
    for source in data.sources:
        if (path := source_file(source)) is not None:
            run.use(path, "dataset", {"role": "train"})
    held_out = write_validation_file(data.validation_rows, run.dir, recipe.data)
    run.log_artifact(held_out, "dataset", {"role": "held-out", "rows": len(data.validation_rows)})

    trained = _train(recipe, as_finetune, student, teacher, data, session)
    trainer, seconds = trained.trainer, trained.seconds
    history = trained.loss_history
    details = {
        "teacher": teacher.name, **layers,
        "steps": trainer.state.global_step, "train_seconds": round(seconds, 1), "train_rows": len(data.train),
        "held_out_rows": len(data.validation_rows), "held_out_file": str(held_out), "dropped_rows": len(data.train.dropped),
        "alpha": recipe.loss.alpha, "temperature": recipe.loss.temperature,
        "learning_rate": recipe.training.learning_rate, "batch_size": recipe.training.batch_size,
        **{f"final_{key}": last_value(history, key) for key in ("loss", "soft_loss", "hard_loss", "eval_loss")},
    }  # fmt: skip
    details = {key: value for key, value in details.items() if value == value}  # NaN: never logged
    manifest = {
        "method": "distill", "teacher": teacher.name, "run_id": run.id, **layers,
        "settings": recipe.model_dump(exclude={"output"}),
    }  # fmt: skip
    student = trainer.model.eval()
    with optimized_folder(output, manifest) as tmp:
        student.save_pretrained(tmp)
        teacher.tokenizer.save_pretrained(tmp)
    run.log_artifact(output, "model", {"method": "distill", "teacher": teacher.name, **layers})
    run.log_metrics({k: float(v) for k, v in details.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    session.finish()  # the run is complete: the student replaces the checkpoints
    shutil.rmtree(work_dir(name), ignore_errors=True)
    return DistillResult(run.id, str(output), details, history)


def _student(recipe: DistillRecipe, teacher: Any, run: Any) -> tuple[Any, dict[str, Any]]:
    """The student model and what it is, for the manifest and report."""
    from genlab.optimize.distill.student import (
        check_same_kind,
        check_same_tokenizer,
        shrink_teacher,
    )

    if recipe.student.model is None:
        shrunk = shrink_teacher(teacher.model, recipe.student.layers)
        kept = shrunk.layers_kept
        return shrunk.model, {
            "student": "teacher-layers",
            "layers_kept": kept,
            "teacher_layers": shrunk.teacher_layers,
            "student_layers": {path: len(keep) for path, keep in kept.items()},
            "teacher_parameters": int(teacher.model.num_parameters()),
            "student_parameters": int(shrunk.model.num_parameters()),
        }
    from genlab.models.load import load_model

    loaded = load_model(recipe.student.model)
    check_same_kind(teacher, loaded, recipe.student.model)
    check_same_tokenizer(teacher, loaded, recipe.student.model)
    if loaded.path is not None:
        run.use(loaded.path, "model", {"model": loaded.name, "role": "student"})
    return loaded.model, {
        "student": loaded.name,
        "teacher_parameters": int(teacher.model.num_parameters()),
        "student_parameters": int(loaded.model.num_parameters()),
    }


def _train(recipe: DistillRecipe, as_finetune: Any, student: Any, teacher: Any, data: Any, session: TrainerSession) -> TrainedRun:
    from genlab.optimize.distill.loss import DistillationTrainer
    from genlab.tuning.arguments import training_arguments
    from genlab.tuning.data import training_collator
    from genlab.tuning.trainer import as_dataset

    training = recipe.training
    # A validation loss costs a pass over the held-out rows with both models; none if no eval step falls in the run.
    has_validation = len(data.validation) > 0 and not (0 < training.max_steps < training.eval_every)
    trainer = DistillationTrainer(
        model=student,
        args=training_arguments(as_finetune, session.checkpoints, has_validation=has_validation),
        train_dataset=as_dataset(data.train),
        eval_dataset=as_dataset(data.validation) if has_validation else None,
        data_collator=training_collator(teacher.tokenizer, is_encoder_decoder=teacher.is_encoder_decoder),
        callbacks=session.callbacks,
        teacher=teacher.model,
        temperature=recipe.loss.temperature,
        alpha=recipe.loss.alpha,
    )
    return session.train(trainer)


def _measure(recipe: DistillRecipe, run: Any, result: DistillResult) -> Any:
    from genlab.optimize.measure import measure
    from genlab.optimize.report import OptimizationReport

    spec = eval_spec(recipe, Path(result.details["held_out_file"]))
    result.details["eval_data"] = spec.data
    teacher = measure(recipe.teacher, spec)
    student = measure(result.folder, spec)
    return OptimizationReport("distill", run.id, result.folder, teacher, student, result.details)


def eval_spec(recipe: DistillRecipe, held_out: Path) -> EvalSpec:
    """What quality is measured on: ``evaluation.data``, or else the held-out rows (with the data's fields)."""
    evaluation = recipe.evaluation
    return EvalSpec(
        data=evaluation.data or str(held_out), metric=evaluation.metric, limit=evaluation.limit,
        input_field=recipe.data.input_field, target_field=recipe.data.target_field, template=recipe.data.template, max_new_tokens=evaluation.max_new_tokens,
        batch_size=evaluation.batch_size, speed_prompts=evaluation.speed_prompts, speed_tokens=evaluation.speed_tokens,
    )  # fmt: skip
