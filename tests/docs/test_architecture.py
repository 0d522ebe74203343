"""The layout's rules, checked on the source: no import cycle between the package's
modules, and no module of the package imported inside a function (where it would hide
one). The layers themselves are import-linter's contract (``[tool.importlinter]`` in
``pyproject.toml``), which ``.ci/run`` checks with ``lint-imports``; this test runs it too."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

import triggerhooks

PACKAGE = Path(triggerhooks.__file__).parent
ROOT = PACKAGE.parent


def _cycles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """Each import ``a -> b`` that closes a cycle, as the chain ``a -> b -> ... -> a``."""
    found = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                found.append((importer, *back))
    return found


def test_no_import_cycle() -> None:
    graph = grimp.build_graph("triggerhooks", exclude_type_checking_imports=True)
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for name in ("p.a", "p.b", "p.c"):
        graph.add_module(name)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.a")
    graph.add_import(importer="p.b", imported="p.c")
    assert _cycles(graph) == [("p.a", "p.b", "p.a"), ("p.b", "p.a", "p.b")]


def _imports_inside_functions(tree: ast.AST) -> list[tuple[int, str]]:
    """Imports of the package's own modules made in a function body."""
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.ImportFrom) and (
                    node.level > 0 or (node.module or "").split(".")[0] == "triggerhooks"):
                found.append((node.lineno, f"from {'.' * node.level}{node.module or ''}"))
            elif isinstance(node, ast.Import):
                found += [(node.lineno, alias.name) for alias in node.names
                          if alias.name.split(".")[0] == "triggerhooks"]
    return found


def test_no_package_import_inside_a_function() -> None:
    problems = [f"{path.relative_to(ROOT)}:{line}: {what}"
                for path in sorted(PACKAGE.rglob("*.py"))
                for line, what in _imports_inside_functions(ast.parse(path.read_text()))]
    assert problems == []


def test_the_function_import_check_sees_one() -> None:
    source = "def f():\n    from .manager import TriggerManager\n    import os\n"
    assert _imports_inside_functions(ast.parse(source)) == [(2, "from .manager")]


@pytest.mark.skipif(shutil.which("lint-imports", path=str(Path(sys.executable).parent)) is None,
                    reason="import-linter is not installed")
def test_layers_contract() -> None:
    result = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
