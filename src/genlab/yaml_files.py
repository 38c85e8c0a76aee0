"""Read a YAML file a user wrote (a recipe, a constitution, a task) into plain Python values, safely.

PyYAML's ``safe_load`` builds no objects, but three shapes of input still end in a traceback or a
hang further on, and each is refused here with one sentence naming the file:

- an anchor that contains its own alias (``a: &x [*x]``): PyYAML builds a list that holds itself,
  and whatever walks it next (overrides, pydantic) dies with ``RecursionError``;
- nesting deeper than the interpreter's stack (``[[[[...]]]]`` thousands deep): the parser itself
  raises ``RecursionError``;
- aliases that multiply (the "billion laughs" shape: each level lists the one before it ten times):
  the loaded value is small because aliases share one object, but anything that copies or validates
  it expands it exponentially. Values whose expanded size passes :data:`MAX_EXPANDED_VALUES` are
  refused.

Written here because PyYAML has no switch for these checks; the walk is linear in the number of
distinct loaded objects (aliases are counted by reference, with the expanded sizes memoised).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from genlab.errors import GenlabError

MAX_EXPANDED_VALUES = 1_000_000  # far past any real recipe (a few hundred values), far below a hang


def load_yaml_file(path: Path, *, what: str, error: type[GenlabError]) -> Any:
    """The value in the YAML file at ``path``; ``what`` names the file in messages ("recipe", ...)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} {path} is not UTF-8 text.") from None
    except OSError as reason:
        raise error(f"{what} {path} cannot be read: {reason.strerror or reason}.") from None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as reason:
        raise error(f"{what} {path} is not valid YAML: {str(reason).splitlines()[0]}.") from None
    except RecursionError:
        raise error(f"{what} {path} is nested too deeply to read.") from None
    problem = structure_problem(value)
    if problem:
        raise error(f"{what} {path} cannot be used: {problem}.")
    return value


def structure_problem(value: Any) -> str | None:
    """Why ``value`` cannot be walked safely (a cycle, or too large once aliases are expanded), or None."""
    sizes: dict[int, int] = {}  # id -> expanded size, for containers already walked
    on_path: set[int] = set()  # containers on the current path from the root (a repeat is a cycle)
    # An explicit stack, so that deep (but legal) nesting cannot overflow the interpreter's.
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        node, done = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        key = id(node)
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        if done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes.get(id(child), 1) for child in children)
            if sizes[key] > MAX_EXPANDED_VALUES:
                return f"its aliases expand to more than {MAX_EXPANDED_VALUES:,} values"
            continue
        if key in on_path:
            return "an anchor refers to itself (a recursive alias such as `a: &x [*x]`)"
        if key in sizes:
            continue
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children)
    return None
