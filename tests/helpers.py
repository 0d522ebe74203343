"""Small test utilities shared by the suite's folders."""

from __future__ import annotations

from pathlib import Path

from triggerhooks.runners import ThreadingTaskRunner

__all__ = ["ROOT", "settle"]

ROOT = Path(__file__).resolve().parents[1]
"""The repository's root (docs/, examples/, plugins/ ...)."""


def settle(timeout: float = 30.0) -> None:
    """Wait until every task started by the threading runner (and its cascades) has ended."""
    ThreadingTaskRunner.join_all(timeout=timeout)
