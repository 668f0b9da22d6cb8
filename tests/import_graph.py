"""The import graph of the harness package, read from source with ast (for the layering tests).

Every import counts, function-level ones included; imports under ``if TYPE_CHECKING:`` do not.
``from harness.x import y`` is an edge to ``harness.x.y`` when that is a module, else to
``harness.x``. Imports of the built-in plugins (``harness_plugins...``) are kept as edges too,
so a test can check that the core imports no plugin.
"""

import ast
from pathlib import Path

import harness

ROOT = Path(harness.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """harness modules imported anywhere in ``tree`` (outside TYPE_CHECKING blocks)."""
    found: set[str] = set()

    def resolve(name: str) -> str | None:
        while name and name not in known:  # `from harness.x import y`: y may be a name, not a module
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("harness.") or a.name == "harness":
                    found.add(resolve(a.name))
                elif a.name.split(".")[0] == "harness_plugins":
                    found.add(a.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target == "harness" or target.startswith("harness."):
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    found.add(sub if sub in known else resolve(target))
            elif target.split(".")[0] == "harness_plugins":
                found.add(target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(None)
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in ROOT.rglob("*.py")}
    known = set(paths)
    graph = {}
    for name, path in paths.items():
        deps = _imports(ast.parse(path.read_text()), name, path.name == "__init__.py", known)
        # importing a package runs its __init__: `harness` itself only re-exports a few names
        graph[name] = {d for d in deps if d != "harness"}
    return graph


def core_graph() -> dict[str, set[str]]:
    """:func:`import_graph` restricted to harness modules (plugin imports dropped)."""
    graph = import_graph()
    for name in graph:
        graph[name] = {d for d in graph[name] if d in graph}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := dfs(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := dfs(n)):
            return c
    return None


