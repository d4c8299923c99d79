"""The shape of the code, checked: no import cycle inside `harness/`, dependencies that point one way (the layers of
docs/ARCHITECTURE.md), no function longer than 80 lines, and every setting documented in the README."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "harness"
MAX_FUNCTION_LINES = 80

# Lower layers never import higher ones; a layer may import itself and anything below (docs/ARCHITECTURE.md).
LAYERS = [
    ["__init__", "errors", "config", "plugins", "fs", "records"],
    ["contract", "metrics", "formats", "measure", "zoo"],
    ["kinds", "predictions"],
    ["tracks", "variants"],
    ["datasets", "submission", "competitions", "uploads"],
    ["sandbox"],
    ["verify"],
    ["runners", "store"],
    ["gate", "service"],
    ["leaderboard_app", "cli", "server"],
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _runtime_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run (module level or inside functions), outside `if TYPE_CHECKING:`."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    return [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom) and id(n) not in skipped]


def import_graph() -> dict[str, set[str]]:
    """module -> the harness modules it imports (`from pkg import name` counts as importing `pkg.name` when that
    is a module, else `pkg`)."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _runtime_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                resolved = resolve(target) if target.startswith("harness") else None
                if resolved and resolved != name:
                    graph[name].add(resolved)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_inside_harness():
    graph = import_graph()
    assert len(graph) > 50 and any(graph.values()), "the import graph was not read"
    assert _cycles(graph) == []


def test_a_cycle_would_be_found():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _group(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_dependencies_point_one_way():
    level = {group: i for i, groups in enumerate(LAYERS) for group in groups}
    graph = import_graph()
    assert {_group(m) for m in graph} <= set(level), "a new folder of harness/ needs its place in LAYERS"
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if level[_group(target)] > level[_group(module)]
    )
    assert upward == []


def test_the_sandbox_never_reaches_the_service_store_or_runners():
    graph = import_graph()
    reached = {target for module, targets in graph.items() if _group(module) == "sandbox" for target in targets}
    assert not {_group(t) for t in reached} & {"service", "store", "runners", "cli", "gate", "leaderboard_app"}


def test_no_function_longer_than_80_lines():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


@pytest.mark.parametrize("variable", sorted(__import__("harness.config", fromlist=["variables"]).variables()))
def test_every_setting_is_documented_in_the_readme(variable):
    assert f"`{variable}`" in (ROOT / "README.md").read_text()
