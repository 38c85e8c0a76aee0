"""fp32 Linear layers on oneDNN with their weights reordered once, for decoding on CPU.

torch runs an fp32 ``nn.Linear`` on CPU through MKL's sgemm, reading the weight in its plain
row-major layout on every call (and for a few rows, repacking it). A decode step multiplies a few
rows by every weight of the model, so that layout sets its speed. oneDNN's matmul on a weight
reordered once into its blocked layout reads it at close to memory bandwidth. Measured on the
default model (SmolLM2-135M, fp32), 2 cores, 80-token cache, one process:

    all 211 Linear layers, cold weights   batch 1: 44 -> 27 ms    batch 8: 57 -> 25 ms
    a whole decode step                   batch 1: 58 -> 43 ms    batch 8: 84 -> 49 ms
    reordering every weight once          0.13-0.23 s

The results are fp32 products summed in another order: they differ from torch's in the last bits
(relative 1e-6), as batched and unbatched products already do; each row's result here does not
depend on the other rows of the call, which makes batched decoding more reproducible, not less.

:func:`packed_linears` is a context manager: inside it, every large fp32 ``nn.Linear`` of a model
(the base layers of peft's LoRA layers included) runs on its reordered copy when called without
autograd; on exit the copies are freed. A copy is made on entry, so it is only right while the
weights do not change: hold the context where nothing trains or merges (decoding; a server's
lifetime). Entries nest with a count per model, so a long-lived holder spares each decoding call
its reordering. The copies cost a second copy of those weights in memory (540 MB for the default
model): packing is skipped, with a log line, when the machine has less than twice that available,
and ``GENLAB_PACKED_WEIGHTS=0`` turns it off.

Written here because torch exposes this pair of ops (``torch.ops.mkldnn._reorder_linear_weight``,
``torch.ops.mkldnn._linear_pointwise``) only to torch.compile's CPU freezing pass, and compiling
the model for every batch and cache shape costs far more here than reordering the weights once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import weakref
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

MIN_WEIGHT_ELEMENTS = 1 << 16  # smaller layers (LoRA's A and B) gain nothing worth a second copy
ENV_SWITCH = "GENLAB_PACKED_WEIGHTS"

_lock = threading.Lock()
_holders: weakref.WeakKeyDictionary[Any, _Packing] = weakref.WeakKeyDictionary()


class _Packing:
    """The layers of one model running on reordered weights, and how many holders keep them."""

    def __init__(self, layers: list[Any]) -> None:
        self.layers = layers
        self.count = 0


@contextlib.contextmanager
def packed_linears(model: Any, *, enabled: bool = True) -> Iterator[int]:
    """Run ``model``'s large fp32 Linear layers on reordered weights while inside; yields how many."""
    if not enabled or not packing_available():
        yield 0
        return
    with _lock:
        packing = _holders.get(model)
        if packing is None:
            packing = _Packing(_pack(model))
            _holders[model] = packing
        packing.count += 1
    try:
        yield len(packing.layers)
    finally:
        with _lock:
            packing.count -= 1
            if packing.count == 0:
                for layer in packing.layers:
                    layer.__dict__.pop("forward", None)
                del _holders[model]


def packing_available() -> bool:
    """oneDNN is in this torch build and the switch does not turn packing off."""
    import torch

    if os.environ.get(ENV_SWITCH, "1").strip().lower() in {"0", "false", "no", "off"}:
        return False
    return bool(torch.backends.mkldnn.is_available()) and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def packable_layers(model: Any) -> list[Any]:
    """The Linear layers packing applies to: plain ``nn.Linear``, fp32 on CPU, large, no forward of their own."""
    import torch

    return [
        module
        for module in model.modules()
        if type(module) is torch.nn.Linear
        and module.weight.dtype == torch.float32
        and module.weight.device.type == "cpu"
        and module.weight.numel() >= MIN_WEIGHT_ELEMENTS
        and "forward" not in module.__dict__  # a hook (accelerate's) or another wrapper already set one
    ]


def _pack(model: Any) -> list[Any]:
    import psutil
    import torch

    layers = packable_layers(model)
    needed = sum(layer.weight.numel() * layer.weight.element_size() for layer in layers)
    available = psutil.virtual_memory().available
    if 2 * needed > available:
        log.info(
            "decoding on torch's default Linear: reordering %d MB of weights for oneDNN needs twice that free, "
            "and %d MB is available",
            needed >> 20,
            available >> 20,
        )
        return []
    packed_layers = []
    try:
        with torch.no_grad():
            for layer in layers:
                try:
                    packed = torch.ops.mkldnn._reorder_linear_weight(layer.weight.detach(), 8)
                except RuntimeError as error:  # a shape or build oneDNN refuses: that layer stays as it is
                    log.debug("not packing a %s Linear: %s", tuple(layer.weight.shape), error)
                    continue
                layer.forward = _packed_forward(layer, packed)
                packed_layers.append(layer)
    except BaseException:  # out of memory, Ctrl-C: no layer stays packed without a holder to unpack it
        for layer in packed_layers:
            layer.__dict__.pop("forward", None)
        raise
    return packed_layers


def _packed_forward(layer: Any, packed: Any) -> Any:
    import torch

    layer_ref = weakref.ref(layer)  # the closure must not keep the layer alive

    def forward(x: Any) -> Any:
        module = layer_ref()
        assert module is not None
        if (
            x.dtype != torch.float32
            or x.device.type != "cpu"
            or (torch.is_grad_enabled() and (x.requires_grad or module.weight.requires_grad))
        ):
            return torch.nn.functional.linear(x, module.weight, module.bias)
        rows = x.reshape(-1, x.shape[-1]).contiguous()
        out = torch.ops.mkldnn._linear_pointwise(rows, packed, module.bias, "none", [], "")
        return out.reshape(*x.shape[:-1], out.shape[-1])

    return forward
