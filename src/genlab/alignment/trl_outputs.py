"""What every trl-trained method of genlab's (GRPO, RLOO, KTO, ORPO) does around the trainer alike:
its Trainer session (checkpoints in ``$GENLAB_HOME/align/<method>/<name>/checkpoints``), how its
adapter is saved and recorded, and the figures of its run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genlab.models.load import LoadedModel
from genlab.training.checkpoints import checkpoints_dir
from genlab.training.parameters import count_parameters
from genlab.training.saving import save_trained
from genlab.training.session import TrainedRun, TrainerSession


def trl_session(method: str, recipe: Any, options: Any, run: Any, metric_names: Mapping[str, str]) -> TrainerSession:
    """The run's :class:`TrainerSession`: checkpoints where the method's ``METHOD.checkpoints`` says, resume,
    progress and callbacks from its :class:`genlab.methods.RunOptions`, losses logged into ``run``."""
    return TrainerSession(
        checkpoints_dir("align", method, recipe.name), name=recipe.name, resume=options.resume, run=run,
        progress=options.progress, callbacks=options.callbacks, metric_names=metric_names,
    )  # fmt: skip


def save_adapter_output(
    policy: Any, loaded: LoadedModel, *, method: str, name: str, run: Any, fingerprint: str, extra: Mapping[str, Any]
) -> Path:
    """Save the trained LoRA adapter (atomically, with its base's fingerprint) and record it as the run's output."""
    output = save_trained(
        policy, loaded, name=name, adapter=True, method=method, run_id=run.id, fingerprint=fingerprint, extra=extra
    )
    run.log_artifact(output, "adapter", {"method": method, "base": loaded.name})
    return output


def run_figures(
    trained: TrainedRun, policy: Any, counts: Mapping[str, float], before: Mapping[str, float], after: Mapping[str, float]
) -> dict[str, float]:
    """Steps, timing, parameter counts, first/last loss, ``counts`` and the before/after figures, for lineage and the result."""
    trainable, total = count_parameters(policy)
    losses = [entry["loss"] for entry in trained.loss_history if "loss" in entry]
    return {
        "steps": float(trained.steps), "train_seconds": trained.seconds, "seconds_per_step": trained.seconds_per_step,
        "trainable_params": float(trainable), "total_params": float(total), **{k: float(v) for k, v in counts.items()},
        **({"first_loss": losses[0], "last_loss": losses[-1]} if losses else {}),
        **{f"before_{k}": v for k, v in before.items()}, **{f"after_{k}": v for k, v in after.items()},
    }  # fmt: skip
