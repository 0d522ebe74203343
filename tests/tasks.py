"""Trigger tasks shared by the tests (importable by worker subprocesses too)."""

from __future__ import annotations

import threading
from typing import Any

from triggerhooks.task import TaskContext, TriggerTask


class Echo(TriggerTask):
    """Returns its trigger kwargs, so tests can see what a task received."""

    name = "tests.echo"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        return {"received": context.trigger_kwargs}


class Noop(TriggerTask):
    name = "tests.noop"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        return {}


class Boom(TriggerTask):
    name = "tests.boom"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        raise ValueError("boom")


def options(context: TaskContext) -> dict[str, Any]:
    """Every trigger's kwargs merged into one mapping (tests pass task options this way)."""
    merged: dict[str, Any] = {}
    for kwargs in context.trigger_kwargs.values():
        merged.update(kwargs)
    return merged


class Flaky(TriggerTask):
    """Retries (with ``cooldown``) until it was retried ``failures`` times, then finishes."""

    name = "tests.flaky"
    max_retries = 3

    def _run(self, context: TaskContext) -> dict[str, Any]:
        settings = options(context)
        retries = context.task_instance.metadata.get("retries", 0)
        if retries < settings.get("failures", 1):
            raise self.retry(exc=ValueError(f"attempt {retries} failed"),
                             cooldown=settings.get("cooldown", 0))
        return {"attempts": retries + 1}


class ThreadName(TriggerTask):
    """Returns the name of the thread it ran in."""

    name = "tests.thread_name"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        return {"thread": threading.current_thread().name}


class Record(TriggerTask):
    """Appends its instance name to the file ``withParams: {"record": {"path": ...}}`` names,
    so a test can count runs across processes."""

    name = "tests.record"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        path = context.trigger_kwargs["record"]["path"]
        with open(path, "a", encoding="utf-8") as log:
            log.write(context.task_instance.name + "\n")
        return {"ran": context.task_instance.name}
