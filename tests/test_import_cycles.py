"""No import cycles in vasset/, and one typed Context built once (no service locator)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "vasset"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, modules: set[str]) -> set[str]:
    """vasset modules a module imports, at any depth except `if TYPE_CHECKING:` blocks.

    Imports inside functions count: a lazy import is how a cycle hides, not how it goes away.
    """
    found: set[str] = set()
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        found |= _imports(node, modules)
    return {m for m in found if m in modules}


def import_graph() -> dict[str, set[str]]:
    """Module -> the vasset modules it imports."""
    paths = {_module_name(p): p for p in ROOT.rglob("*.py")}
    modules = set(paths)
    return {
        name: _imports(ast.parse(path.read_text()), modules) - {name}
        for name, path in paths.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_vasset_has_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 50
    assert cycles(graph) == []


def test_context_is_typed_and_has_no_extras():
    from vasset.context import Context

    names = {f.name for f in dataclasses.fields(Context)}
    assert "extras" not in names
    for service in ("uploads", "direct", "playback", "streams", "console", "wakeup", "transcodes"):
        assert service in names
    source = "\n".join(p.read_text() for p in ROOT.rglob("*.py"))
    assert ".extras" not in source


def test_build_context_builds_every_service_once(test_settings):
    from vasset.context import build_context

    ctx = build_context(test_settings)
    assert ctx.playback.ctx is ctx and ctx.transcodes.ctx is ctx
    assert ctx.streams.limit == test_settings.max_concurrent_streams
    assert ctx.direct is None  # local-disk storage has no direct uploads
