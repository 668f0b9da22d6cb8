"""Import layering inside core packages: no module imports one that imports it back.

Imports are read from the source (module-level and function-level, ``TYPE_CHECKING``
blocks excluded), so a cycle hidden in a function body is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import harness

ROOT = Path(harness.__file__).parent


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, package: str) -> set[str]:
    """Modules of ``package`` (dotted, e.g. ``harness.zoo.world``) that ``path`` imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join([package, base] if base else [package])
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in child.names)
            visit(child)

    visit(tree)
    return found


def _graph(package: str) -> dict[str, set[str]]:
    """Edges between the non-``__init__`` modules of ``package``."""
    folder = ROOT.joinpath(*package.split(".")[1:])
    modules = {f"{package}.{p.stem}": p for p in sorted(folder.glob("*.py")) if p.stem != "__init__"}
    return {name: _imports(path, package) & set(modules) - {name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := dfs(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := dfs(node)):
            return found
    return None


@pytest.mark.parametrize("package", ["harness.models", "harness.unlearning", "harness.zoo"])
def test_no_import_cycles(package):
    graph = _graph(package)
    assert graph, f"no modules found for {package}"
    assert _cycle(graph) is None, f"import cycle in {package}: {' -> '.join(_cycle(graph) or [])}"


def test_cycle_finder_sees_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_harvest_builds_on_neither_cache_nor_buffer():
    graph = _graph("harness.models")
    assert graph["harness.models.harvest"].isdisjoint({"harness.models.cache", "harness.models.buffer"})
    assert "harness.models.harvest" in graph["harness.models.cache"]
    assert {"harness.models.cache", "harness.models.harvest"} <= graph["harness.models.buffer"]


def test_zoo_world_is_below_build_info_and_train():
    graph = _graph("harness.zoo")
    assert graph["harness.zoo.world"] <= {"harness.zoo.lexicon"}
    assert "harness.zoo.build" not in graph["harness.zoo.info"]


def test_unlearning_library_imports_no_plugin():
    folder = ROOT / "unlearning"
    for path in sorted(folder.glob("*.py")):
        plugins = {m for m in _imports(path, "harness.unlearning") if m.split(".")[0] == "harness_plugins"}
        assert not plugins, f"{path.name} imports plugin modules {sorted(plugins)}; the core library must not"
