"""Waiting for work that runs elsewhere (threads, workers) without fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["wait_for"]

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 10.0, message: str = "condition", *,
             interval: float = 0.02) -> T:
    """Poll ``condition`` until it returns something truthy and return that; raise
    ``AssertionError`` naming ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)
