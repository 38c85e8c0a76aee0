"""The registry: every method that trains or transforms a model, one import line each.

The CLI (``genlab align NAME``, ``genlab finetune``, ``genlab optimize distill``) and the lifecycle
(``align``/``adapt`` candidates) look methods up here and nowhere else. Adding a method is one folder
exporting ``METHOD`` (a :class:`genlab.methods.Method`) and one line below, its import::

    from genlab.alignment.grpo import METHOD as GRPO

``_METHODS`` collects every imported ``Method`` in import order (isort keeps it alphabetical by module).

This module sits above the method folders (it imports each one) and below the CLI and the pipeline.
"""

from __future__ import annotations

from genlab.alignment.constitutional import METHOD as CONSTITUTIONAL
from genlab.alignment.dpo import METHOD as DPO
from genlab.alignment.grpo import METHOD as GRPO
from genlab.alignment.kto import METHOD as KTO
from genlab.alignment.orpo import METHOD as ORPO
from genlab.alignment.ppo import METHOD as PPO
from genlab.alignment.reward_model import METHOD as REWARD
from genlab.alignment.rloo import METHOD as RLOO
from genlab.errors import GenlabError
from genlab.methods import Method, MethodGroup
from genlab.optimize.distill import METHOD as DISTILL
from genlab.optimize.prune import METHOD as PRUNE
from genlab.optimize.quantize import METHOD as QUANTIZE
from genlab.tuning.continued_pretraining import METHOD as CONTINUED_PRETRAINING
from genlab.tuning.full import METHOD as FULL
from genlab.tuning.lora import METHOD as LORA
from genlab.tuning.prompt_tuning import METHOD as PROMPT_TUNING
from genlab.tuning.qlora import METHOD as QLORA
from genlab.tuning.selective import METHOD as SELECTIVE

# Every Method imported above, in import order: adding a method is its one import line.
_METHODS: tuple[Method, ...] = tuple(value for value in dict(globals()).values() if isinstance(value, Method))


class UnknownMethodError(GenlabError):
    """A method name that no registered method has."""


def methods(group: MethodGroup | None = None) -> list[Method]:
    """Every registered method in registration order, or those of one ``group``."""
    return [method for method in _METHODS if group is None or method.group == group]


def method_names(group: MethodGroup | None = None) -> list[str]:
    return [method.name for method in methods(group)]


def get_method(name: str, group: MethodGroup | None = None) -> Method:
    """The method called ``name`` (in ``group``, if given); an unknown name is one sentence listing the known ones."""
    for method in methods(group):
        if method.name == name:
            return method
    where = f" {group}" if group else ""
    known = ", ".join(method_names(group)) or "none"
    raise UnknownMethodError(f"unknown{where} method {name!r}: the known ones are {known}.")


def _check_unique() -> None:
    names = [method.name for method in _METHODS]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise RuntimeError(f"methods registered twice: {', '.join(duplicates)}")


_check_unique()
