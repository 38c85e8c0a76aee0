"""What every trl-trained method of genlab's (GRPO, RLOO, KTO, ORPO) does around the trainer alike:
how its adapter is saved and recorded, and the figures of its run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genlab.models.load import LoadedModel
from genlab.training.parameters import count_parameters
from genlab.training.saving import save_trained
from genlab.training.session import TrainedRun


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
