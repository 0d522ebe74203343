"""Run tasks in the calling thread, cascades included, without recursion."""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .base import TaskRunner

if TYPE_CHECKING:
    from ..manager import TriggerManager

__all__ = ["InlineTaskRunner"]

log = logging.getLogger(__name__)


class _Queue(threading.local):
    def __init__(self) -> None:
        self.heap: list[tuple[float, int, TriggerManager, str]] = []
        self.draining = False


class InlineTaskRunner(TaskRunner):
    """Runs instances in the thread that scheduled them, before the outermost call returns.

    Instances scheduled while a task runs (cascades) join a per-thread work
    queue that the outermost call drains, so a chain of any length never
    deepens the stack. Instances run in the order they were scheduled; one
    with a ``countdown`` (a retry's cooldown) waits its turn in the queue,
    blocking the caller meanwhile.
    """

    name = "inline"

    _queue = _Queue()
    _counter = itertools.count()

    def schedule(self, manager: TriggerManager, instance_name: str, countdown: float = 0.0) -> None:
        queue = self._queue
        due = time.monotonic() + countdown if countdown > 0 else 0.0
        heapq.heappush(queue.heap, (due, next(self._counter), manager, instance_name))
        if not queue.draining:
            self._drain(queue)

    def schedule_many(self, manager: TriggerManager,
                      instances: Sequence[tuple[str, float]]) -> None:
        queue = self._queue
        if queue.draining:
            super().schedule_many(manager, instances)
            return
        # Queue the whole batch (through schedule(), which subclasses may extend)
        # before running any of it, so instances run in the order they were scheduled.
        queue.draining = True
        error: Exception | None = None
        try:
            super().schedule_many(manager, instances)
        except Exception as exc:
            error = exc
        finally:
            queue.draining = False
        try:
            self._drain(queue)
        finally:
            if error is not None:
                raise error

    @staticmethod
    def _drain(queue: _Queue) -> None:
        queue.draining = True
        errors: list[Exception] = []
        try:
            heap = queue.heap
            while heap:
                due, _, owner, name = heapq.heappop(heap)
                if due:
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                try:
                    owner.execute(name)
                except Exception as exc:  # keep draining: the rest of the queue is not at fault
                    errors.append(exc)
        except BaseException:
            queue.heap.clear()
            raise
        finally:
            queue.draining = False
        if errors:
            for extra in errors[1:]:
                log.error("inline task runner: %s", extra, exc_info=extra)
            raise errors[0]

    @classmethod
    def _forget_queue(cls) -> None:
        """In a forked child (a task that forks, say): the queue of the thread that forked
        is its parent's, which its parent drains; the child's calls must drain their own."""
        cls._queue = _Queue()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=InlineTaskRunner._forget_queue)
