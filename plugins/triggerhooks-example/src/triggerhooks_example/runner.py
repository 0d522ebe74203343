"""A runner that queues task instances until someone calls ``run_pending()``."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, ClassVar

from triggerhooks import TaskRunner

if TYPE_CHECKING:
    from triggerhooks import TriggerManager


class QueueTaskRunner(TaskRunner):
    """Collects scheduled instances in a process-wide queue; :meth:`run_pending` executes them.

    Useful when work should happen in batches, at a moment the application
    chooses (the end of a web request, a periodic job).
    """

    name = "example-queue"

    _queue: ClassVar[deque[tuple[float, TriggerManager, str]]] = deque()
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def schedule(self, manager: TriggerManager, instance_name: str, countdown: float = 0.0) -> None:
        with self._lock:
            self._queue.append((time.monotonic() + countdown, manager, instance_name))

    @classmethod
    def pending(cls) -> list[str]:
        """Names of the queued instances, oldest first."""
        with cls._lock:
            return [name for _, _, name in cls._queue]

    @classmethod
    def run_pending(cls) -> int:
        """Execute every queued instance that is due, cascades included; return how many ran."""
        ran = 0
        while True:
            with cls._lock:
                now = time.monotonic()
                due = next((item for item in cls._queue if item[0] <= now), None)
                if due is None:
                    return ran
                cls._queue.remove(due)
            _, manager, name = due
            manager.execute(name)
            ran += 1
