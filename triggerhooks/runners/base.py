"""The task runner abstraction: how a scheduled instance gets executed."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from ..events.background import BackgroundCall
    from ..manager import TriggerManager

__all__ = ["TaskRunner"]

log = logging.getLogger(__name__)


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

    def schedule_many(self, manager: TriggerManager,
                      instances: Sequence[tuple[str, float]]) -> None:
        """Hand off the instances one change scheduled, in order: ``(name, countdown)`` pairs.

        Every instance is handed off even if one hand-off fails; the first
        error is raised at the end (the others are logged).
        """
        errors: list[Exception] = []
        for instance_name, countdown in instances:
            try:
                self.schedule(manager, instance_name, countdown)
            except Exception as exc:
                errors.append(exc)
        if errors:
            for extra in errors[1:]:
                log.error("%s: %s", type(self).__name__, extra, exc_info=extra)
            raise errors[0]

    def schedule_receiver(self, manager: TriggerManager, call: BackgroundCall) -> None:
        """Run a background signal receiver (``@on(..., background=True)``) for ``manager``'s session.

        ``call.run(manager)`` makes the call; ``call.to_json()`` is what another
        process needs (with ``triggerhooks.sessions.session_reference(manager)``).
        The default runs it at once, in the calling thread: the signal is sent
        after the change is stored, and the call is handed off at the receiver's
        turn in the order of the signal's receivers.
        """
        call.run(manager)
