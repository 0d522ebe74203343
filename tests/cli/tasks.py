"""Trigger tasks for the command-line tests (imported by the CLI with --import tests.cli.tasks)."""

from __future__ import annotations

from typing import Any

import tests.tasks  # noqa: F401 - the shared tasks (tests.echo, ...) too
from triggerhooks.task import TaskContext, TriggerTask


class FailUnlessOk(TriggerTask):
    """Fails unless the ``a`` trigger's kwargs say ``ok``; a replay with new kwargs fixes it."""

    name = "tests.cli.fail_unless_ok"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        if not context.trigger_kwargs.get("a", {}).get("ok"):
            raise ValueError("not ok yet")
        return {"fixed": True}


class Warns(TriggerTask):
    """Finishes after logging a warning, so its instance has logs to resolve."""

    name = "tests.cli.warns"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        with context.get_logger_context() as logger:
            logger.warning("something to look at")
        return {}


class NeedsTheOrder(TriggerTask):
    """Needs the ``order`` trigger's ``id`` and fails unless the ``a`` trigger says ``ok``:
    a replay that replaces only ``a`` (``--merge``) fixes it, one that replaces all does not."""

    name = "tests.cli.needs_the_order"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        order = context.trigger_kwargs["order"]["id"]
        if not context.trigger_kwargs["a"].get("ok"):
            raise ValueError("not ok yet")
        return {"order": order}
