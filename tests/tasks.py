"""Trigger tasks shared by the tests (importable by worker subprocesses too)."""

from __future__ import annotations

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


class Record(TriggerTask):
    """Appends its instance name to the file ``withParams: {"record": {"path": ...}}`` names,
    so a test can count runs across processes."""

    name = "tests.record"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        path = context.trigger_kwargs["record"]["path"]
        with open(path, "a", encoding="utf-8") as log:
            log.write(context.task_instance.name + "\n")
        return {"ran": context.task_instance.name}
