"""genlab's imports flow downward and never in a circle: a walk of every module's imports (with ast).

Every ``import`` and ``from ... import`` in every module of ``src/genlab`` counts, also those inside
functions: an import moved into a function to dodge a cycle is still the cycle. The allowed order of
the layers is written below, lowest first; a module may import its own layer and the layers below it.
A new top-level package must be placed in ``LAYERS`` before this test passes.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "src" / "genlab"

# Lowest first. A module belongs to the layer of the longest prefix that names it.
LAYERS: list[tuple[str, ...]] = [
    # genlab/__init__ holds __version__ and exposes the public API lazily (no import at load time)
    ("genlab", "genlab.errors", "genlab.home", "genlab.atomic", "genlab.sqlite_support", "genlab.yaml_files", "genlab.config"),
    ("genlab.lineage",),
    ("genlab.tracking",),  # the lineage store mirrored into MLflow, live Trainer callbacks (issue 23)
    ("genlab.methods",),  # the method contract: errors, lineage, pydantic
    ("genlab.models", "genlab.data"),
    # Text from models and its scores. apps.providers (the LLM and embedding clients) belongs here, not
    # with the apps: evaluation's judge and serving's embeddings use it, and it uses only models/generation.
    ("genlab.generation", "genlab.prompting", "genlab.evaluation.metrics", "genlab.evaluation.bootstrap", "genlab.apps.providers"),
    ("genlab.evaluation",),
    ("genlab.training",),  # the shared Trainer run and its callbacks
    ("genlab.tuning",),
    ("genlab.alignment", "genlab.optimize", "genlab.peak_memory"),  # method folders; peak_memory measures like optimize
    ("genlab.registry",),  # imports every method folder
    ("genlab.serving", "genlab.export"),
    ("genlab.apps",),
    ("genlab.pipeline",),
    ("genlab.cli", "genlab.demo", "genlab.__main__"),
]

# Known exceptions, each with the issue that removes it. Keep this list short and shrinking.
ALLOWED_CYCLES: list[set[str]] = []
ALLOWED_UPWARD: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def imported_modules(name: str, path: Path) -> Iterator[str]:
    """The genlab modules ``name`` imports anywhere in its file (a name imported from a package that is
    itself a module counts as that module)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:  # `import genlab.x.y` of a name inside genlab.x
                target = target.rpartition(".")[0]
            if target.startswith("genlab") and target != name:
                yield target


GRAPH = {name: sorted(set(imported_modules(name, path))) for name, path in MODULES.items()}


def layer_of(module: str) -> int:
    best, best_length = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add its package to LAYERS")
    return best


def strongly_connected(graph: dict[str, list[str]]) -> list[set[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, directly or round a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, []):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in graph:
        if node not in index:
            visit(node)
    return groups


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in GRAPH.items()
        for target in targets
        if layer_of(target) > layer_of(module) and (module, target) not in ALLOWED_UPWARD
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    cycles = [group for group in strongly_connected(GRAPH) if not any(group <= allowed for allowed in ALLOWED_CYCLES)]
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(sorted(group)) for group in cycles)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import genlab.lineage.store\n", ["genlab.lineage.store"]),
        ("def f():\n    from genlab.lineage import LineageStore\n", ["genlab.lineage"]),
        ("from genlab.tuning import lora\n", ["genlab.tuning.lora"]),
    ],
)
def test_the_walk_sees_imports_at_any_depth(tmp_path: Path, source: str, expected: list[str]) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    assert sorted(set(imported_modules("genlab.probe", probe))) == expected


def test_the_cycle_finder_finds_a_circle_through_three_modules() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}
    assert strongly_connected(graph) == [{"a", "b", "c"}]
