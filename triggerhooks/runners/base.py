"""The task runner abstraction: how a scheduled instance gets executed."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from ..manager import TriggerManager

__all__ = ["TaskRunner"]


class TaskRunner(ABC):
    """Hands scheduled task instances to something that executes them.

    :meth:`schedule` is called after the instance was committed as
    ``scheduled``; whatever executes it calls ``manager.execute(name)``, which
    claims the instance (scheduled -> running) exactly once, so a duplicate
    hand-off runs nothing twice.
    """

    name: ClassVar[str] = ""

    @abstractmethod
    def schedule(self, manager: TriggerManager, instance_name: str, countdown: float = 0.0) -> None:
        """Arrange for ``manager.execute(instance_name)`` to run after ``countdown`` seconds."""
