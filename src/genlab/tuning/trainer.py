"""`genlab finetune`: one recipe, any method, trained by transformers' Trainer and recorded in lineage.

The Trainer (with accelerate underneath) provides the loop, schedules, gradient accumulation,
evaluation loss, early stopping, checkpoints with optimizer/scheduler/RNG state, exact resumption and
DDP under ``torchrun``; genlab adds the recipe, the data, the methods, Ctrl-C checkpoints, the adapter
record, the scores after training and the lineage record. Only the main process (rank 0) writes
outputs and lineage.

Checkpoints live in ``$GENLAB_HOME/finetune/<recipe name>/checkpoints`` until the run completes; a
run that stopped (Ctrl-C, a crash, a kill) leaves them there, and ``resume=True`` continues from the
last one: the result equals an uninterrupted run's. A checkpoint whose write was cut short (no
readable ``trainer_state.json``, which the Trainer writes last) is removed before resuming. A fresh
run refuses to start over existing checkpoints rather than delete them.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genlab.lineage import LineageStore, record_run
from genlab.models.load import LoadedModel
from genlab.training.parameters import count_parameters
from genlab.training.session import TrainedRun, TrainerSession, last_value
from genlab.tuning.method_kind import FinetuneKind
from genlab.tuning.recipe import FinetuneRecipe, finetune_checkpoints

PrepareModel = Callable[[LoadedModel, FinetuneRecipe], Any]  # the method: the model whose trainable parameters train


@dataclass
class FinetuneResult:
    run_id: str
    adapter_path: str  # the adapter folder, or the model folder for full-weight methods
    trainable_params: int
    total_params: int
    trainable_percent: float
    metrics: dict[str, float]
    method: str = ""
    report: str = ""
    eval_run_id: str | None = None
    baseline_run_id: str | None = None
    dropped_rows: int = 0
    loss_history: list[dict[str, float]] = field(default_factory=list)
    output_kind: str = "adapter"  # "model" for full-weight methods

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def finetune(
    recipe: FinetuneRecipe,
    *,
    prepare: PrepareModel,
    store: LineageStore,
    resume: bool = False,
    recipe_dir: Path | None = None,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
    kind: FinetuneKind = FinetuneKind(),
) -> FinetuneResult:
    """Train ``recipe`` (a method of ``kind``), recording into ``store``; return where the adapter (or model) is and how it scored."""
    checkpoints = finetune_checkpoints(recipe)
    # torchrun, accelerate launch and deepspeed all set RANK; accelerate's state is left for the Trainer
    # to set up (created earlier with other arguments it would disagree with the Trainer's).
    main_process = int(os.environ.get("RANK", "0")) == 0
    session = TrainerSession(checkpoints, name=recipe.name, resume=resume, progress=progress, callbacks=callbacks)
    config = {"recipe": recipe.model_dump(), "resume_from": str(session.start_from) if session.start_from else None}
    with record_run("finetune", config, store=store) if main_process else contextlib.nullcontext() as run:
        session.record_into(run)
        return _finetune(recipe, prepare, kind, run, session, recipe_dir)


def _finetune(
    recipe: FinetuneRecipe, prepare: PrepareModel, kind: FinetuneKind, run: Any, session: TrainerSession, recipe_dir: Path | None
) -> FinetuneResult:
    from transformers import set_seed

    from genlab.models.load import load_model
    from genlab.tuning.assemble import assemble, write_test_split, write_validation_file
    from genlab.tuning.output import save_output

    loaded = load_model(recipe.model)
    if run is not None and loaded.path is not None:
        run.use(loaded.path, "model", {"model": loaded.name})
    data = assemble(recipe, loaded, recipe_dir, raw_text=kind.raw_text)
    validation_file = None
    if run is not None:
        from genlab.data.builtin import source_file

        for source in data.sources:
            if (source_path := source_file(source)) is not None:
                run.use(source_path, "dataset", {"role": "train"})
        validation_file = write_validation_file(data.validation_rows, run.dir, recipe.data)
        run.log_artifact(validation_file, "dataset", {"role": "validation", "rows": len(data.validation_rows)})

    baseline = None
    if run is not None and recipe.evaluation.enabled and recipe.evaluation.baseline:
        baseline = _score(loaded, validation_file, recipe, run, label="baseline")

    from genlab.tuning.forgetting import score_second_task, wants_forgetting_check

    second_task_before = None
    if run is not None and kind.checks_forgetting and wants_forgetting_check(recipe):  # before training changes the weights
        second_task_before = score_second_task(loaded, recipe, run, label="forgetting_before")

    from genlab.models.adapters import base_fingerprint

    fingerprint = base_fingerprint(loaded)  # before training changes any weight
    set_seed(recipe.training.seed)  # adapter initialisation (LoRA's A, random soft prompts) is seeded too
    model = prepare(loaded, recipe)
    saves_adapter = hasattr(model, "peft_config")  # a peft model: only the adapter is saved
    trainable, total = count_parameters(model)
    trained = _train(recipe, model, loaded, data, session)
    trainer = trained.trainer
    if not trainer.is_world_process_zero():
        return FinetuneResult("", "", trainable, total, 100.0 * trainable / total, {})

    history = trained.loss_history
    metrics: dict[str, float] = {
        "train_loss": last_value(history, "loss"),
        "eval_loss": last_value(history, "eval_loss"),
        "steps": float(trained.steps),
        "train_seconds": trained.seconds,
        "seconds_per_step": trained.seconds_per_step,
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "trainable_params": float(trainable),
        "total_params": float(total),
        "trainable_percent": 100.0 * trainable / total,
        "train_rows": float(len(data.train)),
        "dropped_rows": float(len(data.train.dropped) + len(data.validation.dropped)),
    }
    metrics = {k: v for k, v in metrics.items() if v == v}  # NaN: no validation loss was logged
    output = save_output(trainer.model, loaded, recipe, run.id, fingerprint, metrics, adapter=saves_adapter)
    run.log_artifact(output, "adapter" if saves_adapter else "model", {"method": recipe.method, "base": loaded.name})
    run.log_metrics({k: v for k, v in metrics.items() if k not in ("train_loss", "eval_loss")})

    result = FinetuneResult(
        run.id, str(output), trainable, total, 100.0 * trainable / total, metrics, recipe.method,
        dropped_rows=int(metrics["dropped_rows"]), loss_history=history, output_kind="adapter" if saves_adapter else "model",
        baseline_run_id=baseline.run_id if baseline else None,
    )  # fmt: skip
    if recipe.evaluation.enabled and validation_file is not None and kind.scores_answers:
        tuned = _trained_model(trainer.model, loaded, recipe)
        scored = _score(tuned, validation_file, recipe, run, label="tuned")
        result.eval_run_id = scored.run_id
        result.metrics.update({f"val_{k}": v for k, v in scored.metrics.items() if k.startswith(("rouge", "bleu"))})
        run.log_metrics({f"val_{k}": v for k, v in scored.metrics.items() if k.startswith(("rouge", "bleu"))})
        test_file = write_test_split(data, run.dir, recipe.data)
        if test_file is not None:  # scored once, after training: never used to stop or choose
            run.use(test_file, "dataset", {"role": "test"})
            tested = _score(tuned, test_file, recipe, run, label="test", target_field=recipe.data.test_target_field)
            test_metrics = {f"test_{k}": v for k, v in tested.metrics.items() if k.startswith(("rouge", "bleu"))}
            result.metrics.update(test_metrics)
            run.log_metrics(test_metrics)
        if second_task_before is not None:
            from genlab.tuning.forgetting import forgetting_metrics

            forgetting = forgetting_metrics(second_task_before, score_second_task(tuned, recipe, run, label="forgetting_after"))
            result.metrics.update(forgetting)
            run.log_metrics(forgetting)
    from genlab.tuning.report import write_report

    result.report = str(write_report(run, recipe, result, baseline))
    session.finish()  # the run is complete: its output replaces the checkpoints
    return result


def _train(recipe: FinetuneRecipe, model: Any, loaded: Any, data: Any, session: TrainerSession) -> TrainedRun:
    from transformers import EarlyStoppingCallback, Trainer

    from genlab.tuning.arguments import training_arguments
    from genlab.tuning.data import training_collator

    callbacks = list(session.callbacks)
    if recipe.training.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=recipe.training.early_stopping_patience))
    trainer = Trainer(
        model=model,
        args=training_arguments(recipe, session.checkpoints, has_validation=len(data.validation) > 0),
        train_dataset=as_dataset(data.train),
        eval_dataset=as_dataset(data.validation) if len(data.validation) else None,
        data_collator=training_collator(loaded.tokenizer, is_encoder_decoder=loaded.is_encoder_decoder),
        callbacks=callbacks,
    )
    return session.train(trainer)


def as_dataset(features: Any) -> Any:
    from datasets import Dataset

    return Dataset.from_list(features.features)


def _trained_model(model: Any, loaded: Any, recipe: FinetuneRecipe) -> Any:
    """The trained model ready for generation: LoRA merged in; soft prompts kept as a peft model."""
    from dataclasses import replace

    model.eval()
    name = f"{loaded.name}+{recipe.name}"
    adapter = getattr(model, "peft_config", {}).get("default")  # what the method made, not its name, decides
    if adapter is not None and adapter.is_prompt_learning:  # the engine reads the soft prompt before every prompt
        soft_prompt = model.get_prompt_embedding_to_save("default").detach()
        return replace(loaded, name=name, model=model.get_base_model(), soft_prompt=soft_prompt)
    if adapter is not None:  # LoRA (and QLoRA): merged for generation
        model = model.merge_and_unload()
    return replace(loaded, name=name, model=model)


def _score(
    loaded: Any, validation_file: Path | None, recipe: FinetuneRecipe, run: Any, *, label: str, target_field: str | None = None
) -> Any:
    from genlab.evaluation.run import evaluate
    from genlab.generation import GenerationSettings

    assert validation_file is not None
    settings = recipe.evaluation
    result = evaluate(
        loaded, str(validation_file), task="summarize", metrics=settings.metrics, limit=settings.limit,
        template=recipe.data.template, input_field=recipe.data.input_field,
        target_field=target_field or recipe.data.target_field,
        settings=GenerationSettings(max_new_tokens=settings.max_new_tokens), batch_size=settings.batch_size,
        chat=recipe.data.chat and not loaded.is_encoder_decoder,  # scored in the format it was trained on
        store=run.store,
    )  # fmt: skip
    run.store.link(("run", run.id), ("run", result.run_id), label)
    return result
