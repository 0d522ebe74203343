"""Module-level receivers for the background-receiver tests (found by dotted name)."""

from __future__ import annotations

import threading
from typing import Any

calls: list[dict[str, Any]] = []
released = threading.Event()


def record(sender: Any, **kwargs: Any) -> None:
    calls.append({"sender": sender, "thread": threading.current_thread().name, **kwargs})


def slow(sender: Any, **kwargs: Any) -> None:
    released.wait(10)
    calls.append({"sender": sender, "slow": True, **kwargs})


def not_background(sender: Any, **kwargs: Any) -> None:
    calls.append({"sender": sender, "never": True})
