"""The cell module sits below the executors, the executors below the runner: no import cycle.

Every import counts, function-level ones included; only ``if TYPE_CHECKING:`` blocks are
left out (they never run).
"""

import ast
from pathlib import Path

import harness

ROOT = Path(harness.__file__).parent
LAYERED = ("harness.cell", "harness.runner", "harness.store", "harness.executors")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """harness module -> the harness modules it imports (anywhere but under TYPE_CHECKING)."""
    paths = {_module_name(p): p for p in ROOT.rglob("*.py")}
    return {name: {d for d in _imports(ast.parse(p.read_text())) if d in paths and d != name}
            for name, p in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def test_cycle_finder_finds_a_function_level_cycle_and_skips_type_checking():
    code_a = "def f():\n    from harness.b import x\n"
    code_b = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from harness.c import y\nimport harness.a\n"
    code_c = "from harness.b import z\n"
    graph = {"harness.a": _imports(ast.parse(code_a)) & {"harness.b"},
             "harness.b": _imports(ast.parse(code_b)) & {"harness.a", "harness.c"},
             "harness.c": _imports(ast.parse(code_c)) & {"harness.b"}}
    assert graph["harness.b"] == {"harness.a"}
    assert cycles(graph) == [{"harness.a", "harness.b"}]


def test_runner_cell_store_and_executors_are_in_no_import_cycle():
    graph = import_graph()
    assert "harness.cell" in graph and "harness.executors.local" in graph
    bad = [sorted(c) for c in cycles(graph) if any(m == p or m.startswith(p + ".") for m in c for p in LAYERED)]
    assert bad == []


def test_executors_never_import_the_runner():
    graph = import_graph()
    for name, deps in graph.items():
        if name.startswith("harness.executors"):
            assert "harness.runner" not in deps, name
