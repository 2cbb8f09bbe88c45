"""Small functions: none over 60 lines in the engine, the models code or the builder; in the kiosk,
no function over 40 lines and no class over 250 (docstrings aside)."""
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


KIOSK_CLASS_LINES, KIOSK_FUNCTION_LINES = 250, 40


def docstring_lines(node: ast.AST) -> set[int]:
    """The line numbers of every docstring inside `node`, its own included."""
    lines: set[int] = set()
    for inner in ast.walk(node):
        if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and ast.get_docstring(inner):
            docstring = inner.body[0]
            lines.update(range(docstring.lineno, docstring.end_lineno + 1))
    return lines


def oversized(source: str, class_limit: int, function_limit: int) -> list[tuple[str, int]]:
    """(name, lines) of each class longer than `class_limit` lines and each function or method
    whose body is longer than `function_limit`, nested ones included; docstrings do not count."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            limit, first = class_limit, node.lineno
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            limit, first = function_limit, node.body[0].lineno
        else:
            continue
        lines = len(set(range(first, node.end_lineno + 1)) - docstring_lines(node))
        if lines > limit:
            found.append((node.name, lines))
    return found


def test_the_kiosk_check_leaves_docstrings_out():
    body = "".join(f"        x{i} = {i}\n" for i in range(3))
    source = f'class C:\n    """A\n    class."""\n    def f(self):\n        """Long\n        doc."""\n{body}'
    assert oversized(source, 5, 3) == []
    assert oversized(source, 4, 2) == [("C", 5), ("f", 3)]


def test_no_kiosk_class_over_250_lines_and_no_kiosk_function_over_40():
    offenders = [f"{path.relative_to(ROOT)}: {name} ({lines} lines)" for path in sorted((ROOT / "kiosk").glob("*.py"))
                 for name, lines in oversized(path.read_text(encoding="utf-8"), KIOSK_CLASS_LINES,
                                              KIOSK_FUNCTION_LINES)]
    assert not offenders, "kiosk classes over 250 lines or functions over 40: " + "; ".join(offenders)


def test_ci_runs_the_readmes_test_command_with_lint_and_types_before_the_tests():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = next(line.strip() for line in readme.splitlines() if line.strip().startswith("./setup_kiosk.sh --ray"))
    assert command.split(" && ")[1:] == [".venv/bin/ruff check .", ".venv/bin/mypy", ".venv/bin/python -m pytest"]
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
