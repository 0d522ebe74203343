"""Small test utilities (``wait_for`` comes from the public testing toolbox)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from triggerhooks.runners import TaskRunner, ThreadingTaskRunner
from triggerhooks.testing import wait_for

if TYPE_CHECKING:
    from triggerhooks.manager import TriggerManager
    from triggerhooks.models import TaskInstance

__all__ = ["HeldTaskRunner", "settle", "wait_for"]


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
