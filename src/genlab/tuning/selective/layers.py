"""Selective fine-tuning: train only chosen transformer layers (and optionally embeddings/head).

Freezing the lower layers and training the top ones is the cheapest full-weight adaptation and the
course's first answer to "which parameters should change?".
"""

from __future__ import annotations

from typing import Any

from genlab.errors import InvalidValueError
from genlab.models.load import LoadedModel
from genlab.tuning.recipe import SelectiveConfig


def transformer_layers(model: Any) -> Any:
    """The ModuleList of the model's transformer blocks (decoder blocks for encoder-decoders)."""
    import torch

    candidates = [
        module
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.ModuleList) and name.rsplit(".", 1)[-1] in ("layers", "h", "block", "layer")
    ]
    if not candidates:
        raise InvalidValueError("method=selective is not allowed: this model's transformer layers were not found.")
    return candidates[-1]  # the decoder's, when an encoder comes first


def prepare(loaded: LoadedModel, settings: SelectiveConfig) -> Any:
    model = loaded.model
    layers = transformer_layers(model)
    count = len(layers)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for index in settings.layers:
        if not -count <= index < count:
            raise InvalidValueError(
                f"selective.layers={index} is not allowed: the model has {count} layers (0 to {count - 1}, or -1 to -{count})."
            )
        for parameter in layers[index].parameters():
            parameter.requires_grad_(True)
    if settings.train_embeddings:
        model.get_input_embeddings().weight.requires_grad_(True)
    if settings.train_head and model.get_output_embeddings() is not None:
        model.get_output_embeddings().weight.requires_grad_(True)
    model.train()
    return model
