"""Run each task instance in its own thread."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from typing import TYPE_CHECKING, ClassVar

from ..exceptions import RunnerError
from .base import TaskRunner

if TYPE_CHECKING:
    from ..events.background import BackgroundCall
    from ..manager import TriggerManager

__all__ = ["ThreadingTaskRunner"]

log = logging.getLogger(__name__)


class ThreadingTaskRunner(TaskRunner):
    """Starts a daemon thread per instance; :meth:`join_all` waits for all of them.

    Cascades scheduled by a task thread start further threads, and
    ``join_all`` waits for those too.
    """

    name = "threading"

    _threads: ClassVar[set[threading.Thread]] = set()
    _lock: ClassVar[threading.Condition] = threading.Condition()
    _local: ClassVar[threading.local] = threading.local()

    def schedule(self, manager: TriggerManager, instance_name: str, countdown: float = 0.0) -> None:
        thread = threading.Thread(target=self._execute_later, args=(manager, instance_name, countdown),
                                  name=f"triggerhooks {instance_name}", daemon=True)
        self._start(thread, f"{instance_name} (it stays scheduled: hand it off again with "
                            f"manager.update_instance_status({instance_name!r}, 'scheduled'))")

    def schedule_receiver(self, manager: TriggerManager, call: BackgroundCall) -> None:
        """Run a background receiver in its own thread (``join_all`` waits for it too)."""
        thread = threading.Thread(target=self._call, args=(manager, call),
                                  name=f"triggerhooks receiver {call.receiver_name}", daemon=True)
        self._start(thread, f"background receiver {call.receiver_name}")

    @classmethod
    def _start(cls, thread: threading.Thread, what: str) -> None:
        """Start ``thread``, which ``join_all`` waits for; one that cannot start (the process
        is out of threads or memory) is forgotten again, so that ``join_all`` never waits
        for it, and raises :class:`RunnerError` naming ``what`` it was for."""
        with cls._lock:
            cls._threads.add(thread)
        try:
            thread.start()
        except Exception as exc:
            with cls._lock:
                cls._threads.discard(thread)
                cls._lock.notify_all()
            raise RunnerError(f"threading task runner: cannot start a thread for {what}: "
                              f"{exc}") from exc

    @classmethod
    def _call(cls, manager: TriggerManager, call: BackgroundCall) -> None:
        cls._local.in_task = True
        try:
            call.run(manager)
        except Exception:
            log.exception("threading task runner: background receiver %s failed",
                          call.receiver_name)
        finally:
            with cls._lock:
                cls._threads.discard(threading.current_thread())
                cls._lock.notify_all()

    @classmethod
    def _execute_later(cls, manager: TriggerManager, instance_name: str, countdown: float) -> None:
        cls._local.in_task = True
        try:
            if countdown > 0:
                time.sleep(countdown)
            manager.execute(instance_name)
        except Exception:
            log.exception("threading task runner: executing %s failed", instance_name)
        finally:
            with cls._lock:
                cls._threads.discard(threading.current_thread())
                cls._lock.notify_all()

    @classmethod
    def join_all(cls, timeout: float | None = None) -> None:
        """Wait until every task thread, and every thread their cascades started, has ended.

        Raises :class:`RunnerError` when called from a task thread (it would
        wait for itself) or when ``timeout`` seconds pass first. An infinite
        ``timeout`` waits as ``None`` does; NaN is a ``ValueError``.
        """
        if getattr(cls._local, "in_task", False):
            raise RunnerError("join_all() cannot be called from a task thread: it would wait "
                              "for itself")
        if timeout is not None and math.isnan(timeout):
            raise ValueError("join_all() takes a timeout in seconds, or None to wait as long "
                             "as it takes, not nan")
        deadline = None if timeout is None else time.monotonic() + timeout
        with cls._lock:
            while cls._threads:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise RunnerError(f"{len(cls._threads)} task thread(s) still running after "
                                      f"{timeout}s")
                # A wait longer than the platform allows (an infinite timeout) waits in turns.
                cls._lock.wait(None if remaining is None
                               else min(remaining, threading.TIMEOUT_MAX))

    @classmethod
    def active_count(cls) -> int:
        with cls._lock:
            return len(cls._threads)

    @classmethod
    def _forget_threads(cls) -> None:
        """In a forked child: the parent's task threads do not exist there (so ``join_all``
        would wait for them forever), and the lock may have been held by one of them."""
        cls._threads = set()
        cls._lock = threading.Condition()
        cls._local = threading.local()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=ThreadingTaskRunner._forget_threads)
