"""Rules of the module map (docs/architecture.md) that code review alone lets slip."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module, module: str, package: str) -> set[str]:
    """karmad modules this one depends on: every import it makes, those for type
    checking and those inside a function included. A function may defer an import (for
    start-up time, or for a rarely needed part), but a deferred import that closes a
    circle is still one: to a reader, and to the interpreter once that function runs.

    Importing `a.b.c` runs the packages `a` and `a.b` first, so it depends on their
    `__init__` too, unless this module lives inside them (a package's own modules
    import each other freely)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    packages: set[str] = set()
    for name in found:
        parts = name.split(".")
        packages.update(".".join(parts[:i]) for i in range(1, len(parts)))
    own = {module.rsplit(".", i)[0] for i in range(module.count(".") + 1)}
    return {name for name in found | (packages - own) if name.split(".")[0] == package}


def _graph() -> dict[str, set[str]]:
    trees = {_module(p): ast.parse(p.read_text()) for p in sorted(ROOT.glob("karmad/**/*.py"))}
    return {
        name: {dep for dep in _imports(tree, name, "karmad") if dep in trees} - {name}
        for name, tree in trees.items()
    }


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph[node]):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_through_others() -> None:
    graph = _graph()
    assert "karmad.services" in graph["karmad.api.teams"]  # the graph sees imports...
    assert "karmad.config_load" in graph["karmad.cli"]  # ...those inside a function too
    assert _circles(graph) == []


def test_the_graph_counts_deferred_imports_and_the_packages_they_run() -> None:
    tree = ast.parse("def f() -> None:\n    from karmad.redact.custom import RuleError\n")
    assert _imports(tree, "karmad.config", "karmad") == {
        "karmad.redact",
        "karmad.redact.custom",
        "karmad.redact.custom.RuleError",
    }
    # Inside the package, its `__init__` is already running: no edge back to it.
    assert "karmad.redact" not in _imports(tree, "karmad.redact.engine", "karmad")


def test_the_circle_check_finds_a_circle() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_handlers_use_no_private_member_of_a_service() -> None:
    """A handler decodes, delegates to a public method and returns: what it would need
    of a private one belongs in the service's interface."""
    private = []
    for path in sorted(ROOT.glob("karmad/api/*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                private.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert private == []
