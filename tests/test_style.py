"""Small functions: none over 60 lines in the engine, the models code or the builder (the kiosk's
Qt widgets are laid out in longer constructors)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("face_engine", "models", "index_builder")
MAX_LINES = 60


def long_functions(source: str, limit: int) -> list[tuple[str, int]]:
    """(name, lines) of each function or method whose body spans more than `limit` lines, nested
    ones included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.body[-1].end_lineno - node.body[0].lineno + 1
            if lines > limit:
                found.append((node.name, lines))
    return found


def test_the_check_counts_a_body_line_by_line():
    body = "".join(f"    x{i} = {i}\n" for i in range(3))
    assert long_functions(f"def f():\n{body}", 2) == [("f", 3)]
    assert long_functions(f"def f():\n{body}", 3) == []


def test_no_function_is_longer_than_60_lines():
    offenders = [f"{path.relative_to(ROOT)}: {name} ({lines} lines)"
                 for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
                 for name, lines in long_functions(path.read_text(encoding="utf-8"), MAX_LINES)]
    assert not offenders, "functions over 60 lines: " + "; ".join(offenders)


def test_ci_runs_the_readmes_test_command_with_lint_and_types_before_the_tests():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = next(line.strip() for line in readme.splitlines() if line.strip().startswith("./setup_kiosk.sh --ray"))
    assert command.split(" && ")[1:] == [".venv/bin/ruff check .", ".venv/bin/mypy", ".venv/bin/python -m pytest"]
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
