"""Plugin packages use triggerhooks through two stable modules only: the top-level package
and ``triggerhooks.ext``, so the internal layout can change without breaking them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import triggerhooks
from tests.helpers import ROOT
from triggerhooks import cli, ext
from triggerhooks.testing import contract

PUBLIC = {"triggerhooks": set(triggerhooks.__all__), "triggerhooks.ext": set(ext.__all__),
          "triggerhooks.testing.contract": set(contract.__all__),
          "triggerhooks.cli": set(cli.__all__)}
"""The modules a plugin may import from, with the names each offers: the top level, the
plugin authors' module, for a storage backend's tests the storage contract (a module of
its own: importing it registers the contract's tasks) and the command line (documented
as ``triggerhooks.cli.cli``; above ``ext`` in the layers, so not re-exported there)."""


def plugin_packages() -> list[Path]:
    """Every plugin distribution in the repository: a folder with a ``pyproject.toml``."""
    return sorted(path.parent for folder in ("plugins", "tests")
                  for path in (ROOT / folder).rglob("pyproject.toml"))


def refused_imports(source: str) -> list[str]:
    """Each import of ``source`` that reaches past the two public modules, as ``line: what``."""
    refused = []
    for node in ast.walk(ast.parse(source)):  # every import: top level, TYPE_CHECKING, functions
        if isinstance(node, ast.Import):
            wanted = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            wanted = [(node.module, alias.name) for alias in node.names]
        else:
            continue
        for module, name in wanted:
            if module != "triggerhooks" and not module.startswith("triggerhooks."):
                continue
            if module not in PUBLIC or (name is not None and name not in PUBLIC[module]):
                refused.append(f"{node.lineno}: {module}" + (f" import {name}" if name else ""))
    return refused


def test_the_bundled_plugins_are_found() -> None:
    names = {path.name for path in plugin_packages()}
    assert {"triggerhooks-celery", "triggerhooks-example"} <= names


@pytest.mark.parametrize("package", plugin_packages(), ids=lambda path: path.name)
def test_a_plugin_imports_only_the_top_level_and_ext(package: Path) -> None:
    refused = {str(path.relative_to(ROOT)): found for path in sorted(package.rglob("*.py"))
               if (found := refused_imports(path.read_text()))}
    assert refused == {}, ("a plugin imports triggerhooks modules other than `triggerhooks` and "
                           "`triggerhooks.ext` (add what it needs to triggerhooks/ext.py)")


def test_the_check_catches_every_kind_of_import() -> None:
    source = ("import triggerhooks.manager\n"
              "from triggerhooks.plugins import hookimpl\n"
              "from triggerhooks import plugins\n"
              "from triggerhooks.ext import no_such_name\n"
              "def f():\n    from triggerhooks.storages import open_reference\n"
              "import triggerhooks, triggerhooks_example\n"
              "from triggerhooks import TriggerManager\n"
              "from triggerhooks.ext import hookimpl\n")
    assert refused_imports(source) == [
        "1: triggerhooks.manager", "2: triggerhooks.plugins import hookimpl",
        "3: triggerhooks import plugins", "4: triggerhooks.ext import no_such_name",
        "6: triggerhooks.storages import open_reference"]


def test_every_name_ext_exports_exists() -> None:
    assert len(ext.__all__) == len(set(ext.__all__))
    assert [name for name in ext.__all__ if not hasattr(ext, name)] == []
