"""Estimates for a catalog model by name (its card gives the parameter count and the architecture)."""

from __future__ import annotations

from typing import Any

from genlab.errors import InvalidValueError
from genlab.models.catalog import get_card
from genlab.models.estimate import Estimate, EstimateRequest, estimate


def estimate_for(*, params: float | None = None, model: str | None = None, **settings: Any) -> Estimate:
    """Estimate for a parameter count, or for a catalog model (which also gives the architecture)."""
    if (params is None) == (model is None):
        raise InvalidValueError("estimate: pass exactly one of --params N or --model NAME.")
    shape = None
    if model is not None:
        card = get_card(model)
        if card.params is None:
            raise InvalidValueError(f"estimate: the card of {model!r} has no parameter count; pass --params.")
        params, shape = card.params, card.shape
    return estimate(EstimateRequest(params=params, shape=shape, **settings))
