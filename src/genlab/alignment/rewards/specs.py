"""The ``rewards`` field of a GRPO or RLOO recipe: ``{spec: weight}``, checked, then built into trl functions.

trl sums the functions' rewards with the weights, ``r(x, y) = Σ_k w_k · r_k(x, y)``, before it
computes advantages. A spec is checked when the recipe is validated (its form only: nothing is
loaded), and built at the start of a run, before the policy is loaded, so a classifier that is not
there or a module that does not import fails in seconds. The spec forms are listed in
:mod:`genlab.alignment.rewards`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator

from genlab.alignment.reward import as_trl_reward_func, load_reward
from genlab.alignment.rewards.python_function import (
    PREFIX,
    check_function_name,
    import_reward_function,
)
from genlab.alignment.rewards.text import ROUGE_NAMES, RougeReward, json_valid

JSON_VALID = "json-valid"
TrlRewardFunction = Callable[..., list[float]]


def check_reward_spec(spec: str) -> str:
    """``spec`` stripped, if its form is one genlab knows (see the package docstring); else a ValueError sentence."""
    spec = spec.strip()
    if not spec:
        raise ValueError("a reward spec is empty")
    if spec.startswith(PREFIX):
        check_function_name(spec)
    return spec


def _check_specs(specs: dict[str, float]) -> dict[str, float]:
    if not specs:
        raise ValueError("name at least one reward, e.g. {non-toxicity: 1.0}")
    checked: dict[str, float] = {}
    for spec, weight in specs.items():
        if weight == 0:
            raise ValueError(f"reward {spec!r} has weight 0, which trains nothing: remove it or give it a weight")
        checked[check_reward_spec(spec)] = weight
    return checked


RewardSpecs = Annotated[dict[str, float], AfterValidator(_check_specs)]  # spec -> weight, as written in a recipe


def build_reward_function(spec: str, recipe_dir: Path | None = None) -> TrlRewardFunction:
    """One trl reward function for ``spec``."""
    spec = check_reward_spec(spec)
    if spec in ROUGE_NAMES:
        return RougeReward(spec)  # type: ignore[arg-type]
    if spec == JSON_VALID:
        return json_valid
    if spec.startswith(PREFIX):
        return import_reward_function(spec, recipe_dir)
    return as_trl_reward_func(load_reward(spec))  # toxicity, a classifier, a trained reward model


def build_reward_functions(
    specs: dict[str, float], recipe_dir: Path | None = None
) -> tuple[list[TrlRewardFunction], list[float]]:
    """(functions, weights) in the recipe's order, as trl's ``reward_funcs`` and ``reward_weights`` take them."""
    functions = [build_reward_function(spec, recipe_dir) for spec in specs]
    return functions, [float(weight) for weight in specs.values()]


def needs_reference(specs: dict[str, Any]) -> bool:
    """Whether any reward compares the completion with the row's reference answer."""
    return any(spec.strip() in ROUGE_NAMES for spec in specs)
