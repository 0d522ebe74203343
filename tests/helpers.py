"""Small test utilities shared by the suite's folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from triggerhooks.runners import ThreadingTaskRunner

__all__ = ["GRAPHVIZ", "ROOT", "needs_dot", "settle"]

ROOT = Path(__file__).resolve().parents[1]
"""The repository's root (docs/, examples/, plugins/ ...)."""

GRAPHVIZ = shutil.which("dot") is not None
"""Graphviz draws the SVG and PNG pictures; CI installs it, a developer's machine may not."""
needs_dot = pytest.mark.skipif(not GRAPHVIZ, reason="Graphviz dot is not installed")


def settle(timeout: float = 30.0) -> None:
    """Wait until every task started by the threading runner (and its cascades) has ended."""
    ThreadingTaskRunner.join_all(timeout=timeout)
