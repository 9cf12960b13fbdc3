"""No import circle in sage_core or sage_ros: every import counts, under TYPE_CHECKING and in functions too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_files(*packages: str) -> dict[str, Path]:
    """Dotted module name -> file, a package by its __init__.py."""
    files = {}
    for path in (p for package in packages for p in (ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The known modules ``path`` imports; ``from pkg import sub`` names the submodule, not the package."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return {m for m in found if m in known and m != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every back edge of a depth-first walk, as the circle it closes."""
    state: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def import_graph(*packages: str) -> dict[str, set[str]]:
    known = module_files(*packages)
    return {name: imported(name, path, known) for name, path in known.items()}


def test_no_import_circle_in_sage_core_or_sage_ros():
    graph = import_graph("sage_core", "sage_ros")
    assert "sage_core.train.state" in graph["sage_core.train.distiller"]  # the walk sees real imports
    assert "sage_ros.stream.frame_path" in graph["sage_ros.fusion_node"]
    assert [" -> ".join(c) for c in cycles(graph)] == []
