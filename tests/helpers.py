"""Small test utilities shared by the suite's folders."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from triggerhooks.runners import ThreadingTaskRunner

__all__ = ["GRAPHVIZ", "ROOT", "needs_dot", "run_threads", "settle"]

ROOT = Path(__file__).resolve().parents[1]
"""The repository's root (docs/, examples/, plugins/ ...)."""

GRAPHVIZ = shutil.which("dot") is not None
"""Graphviz draws the SVG and PNG pictures; CI installs it, a developer's machine may not."""
needs_dot = pytest.mark.skipif(not GRAPHVIZ, reason="Graphviz dot is not installed")


def settle(timeout: float = 30.0) -> None:
    """Wait until every task started by the threading runner (and its cascades) has ended."""
    ThreadingTaskRunner.join_all(timeout=timeout)


def run_threads(target: Callable[[Any], object], each: Iterable[Any],
                timeout: float = 60.0) -> list[BaseException]:
    """Call ``target(item)`` for every item of ``each``, each on a thread of its own, all at
    once; what they raised. Fails if a thread is still running after ``timeout`` seconds."""
    errors: list[BaseException] = []

    def guarded(item: Any) -> None:
        try:
            target(item)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(item,)) for item in each]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), f"threads still running after {timeout}s"
    return errors
