"""Full fine-tuning: every weight is trained (also the method behind continued pre-training)."""

from __future__ import annotations

from typing import Any

from genlab.models.load import LoadedModel


def prepare(loaded: LoadedModel) -> Any:
    model = loaded.model
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    model.train()
    return model
