"""The name transformers gives the key/value cache: ``cache`` in newer releases, ``past_key_values`` before.

transformers 5.x renamed the model argument and output field (the old names still work for a while,
with a FutureWarning on every forward and a removal announced for 5.40). genlab supports the whole
``transformers>=5,<6`` range, so the name is read once from the output class rather than assumed.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def cache_name() -> str:
    """``"cache"`` when this transformers has the new name, else ``"past_key_values"``."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def cache_kwargs(cache: Any) -> dict[str, Any]:
    """The keyword argument that hands ``cache`` to a model's forward (or to a model output's constructor)."""
    return {cache_name(): cache}


def cache_of(output: Any) -> Any:
    """The key/value cache a forward returned."""
    return getattr(output, cache_name())
