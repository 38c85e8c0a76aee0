"""A reward function named in a recipe as ``python:<module>:<function>``, imported and checked.

The function has trl's reward interface, ``f(prompts, completions, **kwargs) -> list[float]``: the
prompts and completions as text, and the dataset's other columns (``reference``) plus trl's
extras (``completion_ids``, ``trainer_state``) as keyword arguments, so it should accept
``**kwargs``. The module is found on ``sys.path`` (the current folder first, as ``python -m`` does)
or in the recipe's folder. Written here because importing a ``module:function`` name with errors a
user can read is a few lines that no library offers in this form.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError

PREFIX = "python:"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")


class RewardFunctionError(GenlabError):
    """A ``python:<module>:<function>`` reward that cannot be imported or called as a reward."""


def check_function_name(spec: str) -> str:
    """``<module>:<function>`` from ``python:<module>:<function>``; a malformed name is one sentence."""
    name = spec.removeprefix(PREFIX).strip()
    if not NAME.match(name):
        raise ValueError(f"reward {spec!r}: write a Python reward as python:<module>:<function>, e.g. python:my_rewards:brevity")
    return name


def import_reward_function(spec: str, search_dir: Path | None = None) -> Callable[..., list[float]]:
    """The function ``spec`` names, imported from ``sys.path`` or ``search_dir``."""
    module_name, _, function_name = check_function_name(spec).partition(":")
    added = search_dir is not None and str(search_dir) not in sys.path
    if added:
        sys.path.append(str(search_dir))
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        where = f" or {search_dir}" if search_dir is not None else ""
        raise RewardFunctionError(
            f"reward {spec!r}: cannot import module {module_name!r} from the current folder{where} ({error})."
        ) from None
    finally:
        if added:
            sys.path.remove(str(search_dir))
    function: Any = getattr(module, function_name, None)
    if function is None or not callable(function):
        raise RewardFunctionError(f"reward {spec!r}: module {module_name!r} has no function {function_name!r}.")
    _check_signature(spec, function)
    return _named(spec, function)


def _check_signature(spec: str, function: Callable[..., Any]) -> None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return  # a builtin or C function: trl will call it as it is
    try:
        signature.bind(prompts=[], completions=[])
    except TypeError:
        raise RewardFunctionError(
            f"reward {spec!r}: the function must take prompts= and completions= keyword arguments "
            "(and **kwargs for the dataset's other columns), as trl's reward functions do."
        ) from None


def _named(spec: str, function: Callable[..., Any]) -> Callable[..., list[float]]:
    """``function`` with its result checked as numbers; named after its spec, which trl logs."""

    def reward(prompts: Any, completions: Any, **kwargs: Any) -> list[float]:
        scores = function(prompts=prompts, completions=completions, **kwargs)
        try:
            return [float(score) for score in scores]
        except (TypeError, ValueError):
            raise RewardFunctionError(f"reward {spec!r} must return a list of numbers, one per completion.") from None

    reward.__name__ = spec.removeprefix(PREFIX).replace(":", ".")
    return reward
