"""The project's import graph: no cycle, the engine packages import neither app, and Qt stays in kiosk/.

Imports are read from the source with ast (module level and inside functions alike), so a cycle
hidden behind a function-level import is found too."""
from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("face_engine", "models", "index_builder", "kiosk")


def modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    found = {package: ROOT / package / "__init__.py" for package in PACKAGES}
    for package in PACKAGES:
        for module in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            path = ROOT / Path(*module.name.split("."))
            found[module.name] = path / "__init__.py" if module.ispkg else path.with_suffix(".py")
    return found


def imported(path: Path, name: str) -> set[str]:
    """The dotted names a module imports (`from a import b` gives a and a.b: b may be a module)."""
    names: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def graph() -> dict[str, set[str]]:
    """Each project module and the project modules it imports."""
    known = modules()
    return {name: {other for other in imported(path, name) if other in known and other != name}
            for name, path in known.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path that ends where it starts, or None (a depth-first search)."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        path.append(node)
        for other in sorted(edges[node]):
            cycle = visit(other)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return None

    for node in sorted(edges):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def test_the_finder_reports_a_cycle_through_a_function_level_import():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_the_project_and_its_function_level_imports():
    edges = graph()
    assert {"face_engine.gallery", "index_builder.build", "kiosk.worker", "models.packs"} <= set(edges)
    assert "models.packs" in edges["face_engine.query"], "open_for_query imports it inside the function"


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_engine_packages_import_neither_app():
    for name, path in modules().items():
        if name.split(".")[0] in ("face_engine", "models"):
            apps = {other for other in imported(path, name) if other.split(".")[0] in ("index_builder", "kiosk")}
            assert not apps, f"{name} imports {sorted(apps)}"


def test_only_the_kiosk_imports_qt():
    for name, path in modules().items():
        if not name.startswith("kiosk"):
            qt = {other for other in imported(path, name) if other.split(".")[0] == "PySide6"}
            assert not qt, f"{name} imports {sorted(qt)}"
