"""Unstructured magnitude pruning (Han et al. 2015, "Learning both Weights and Connections for Efficient
Neural Networks", arXiv:1506.02626): zero the weights of smallest magnitude.

With ``k = round(sparsity * n)``, a mask keeps every weight but the k of smallest |w|:

    mask_i = 0 if |w_i| is among the k smallest |w| else 1,      w <- w * mask

``scope=global`` ranks all n weights of every Linear layer together (``torch.nn.utils.prune``'s
``global_unstructured`` with ``L1Unstructured``), so layers end with different sparsities;
``scope=layer`` ranks each layer's weights alone (``l1_unstructured``), so every layer has the same
sparsity. The output head is left dense: in most small models it is tied to the input embeddings.
The masks are made permanent (``prune.remove``) before saving, so the folder is an ordinary model.

The zeros are stored densely: without sparse kernels a model with half its weights zero is as large
and as fast as before. This shows what quality a sparsity costs; it does not make the model cheaper.
"""

from __future__ import annotations

from typing import Any

Masks = dict[str, Any]  # Linear module name -> bool tensor, True where the weight is kept


def prunable_linears(model: Any) -> list[tuple[str, Any]]:
    """Every ``nn.Linear`` but the output head, by module name."""
    from torch import nn

    head = model.get_output_embeddings()
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear) and m is not head]


def prune_unstructured(model: Any, sparsity: float, scope: str) -> Masks:
    """Zero the smallest-magnitude Linear weights of ``model`` in place; return the masks."""
    import torch
    from torch.nn.utils import prune

    linears = prunable_linears(model)
    with torch.no_grad():
        if scope == "global":
            parameters = [(module, "weight") for _, module in linears]
            prune.global_unstructured(parameters, pruning_method=prune.L1Unstructured, amount=sparsity)
        else:
            for _, module in linears:
                prune.l1_unstructured(module, "weight", amount=sparsity)
        masks = {name: module.weight_mask.detach().bool().clone() for name, module in linears}
        for _, module in linears:
            prune.remove(module, "weight")  # weight = weight_orig * mask, as a plain parameter again
    return masks


def apply_masks(model: Any, masks: Masks) -> None:
    """Zero the masked weights again (after merging a dense LoRA update, for instance)."""
    import torch

    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, mask in masks.items():
            modules[name].weight.mul_(mask.to(modules[name].weight.dtype))


def sparsity_report(model: Any) -> dict[str, Any]:
    """Zeros / weights per Linear layer and over all of them (``sparsity``) and over every parameter."""
    linears = prunable_linears(model)
    per_layer = {}
    zeros = weights = 0
    for name, module in linears:
        layer_zeros = int((module.weight == 0).sum())
        per_layer[name] = layer_zeros / module.weight.numel()
        zeros += layer_zeros
        weights += module.weight.numel()
    all_zeros = sum(int((p == 0).sum()) for p in model.parameters())
    all_weights = sum(p.numel() for p in model.parameters())
    return {
        "sparsity": zeros / weights, "zeros": zeros, "prunable_weights": weights,
        "model_sparsity": all_zeros / all_weights, "layer_sparsity": per_layer,
    }  # fmt: skip
