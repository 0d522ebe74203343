"""Small test utilities."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, TypeVar

from triggerhooks.runners import TaskRunner, ThreadingTaskRunner

if TYPE_CHECKING:
    from triggerhooks.manager import TriggerManager
    from triggerhooks.models import TaskInstance

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.01,
             message: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def settle(timeout: float = 30.0) -> None:
    """Wait until every task started by the threading runner (and its cascades) has ended."""
    ThreadingTaskRunner.join_all(timeout=timeout)


class HeldTaskRunner(TaskRunner):
    """A runner that only records hand-offs, so tests can see instances stay ``scheduled``."""

    name = "held"
    held: ClassVar[list[tuple[TriggerManager, str, float]]] = []

    def schedule(self, manager: TriggerManager, instance_name: str, countdown: float = 0.0) -> None:
        type(self).held.append((manager, instance_name, countdown))

    @classmethod
    def release(cls) -> list[TaskInstance | None]:
        """Execute every held instance (and any held by their cascades), oldest first."""
        done: list[TaskInstance | None] = []
        while cls.held:
            manager, name, _ = cls.held.pop(0)
            done.append(manager.execute(name))
        return done
