"""A receiver module that a test plugin names in its ``triggerhooks_receiver_modules`` hook.

Its receiver listens only to its own task, so it stays inert for other tests.
"""

from __future__ import annotations

from typing import Any

from triggerhooks import TaskInstance, TriggerTask, on
from triggerhooks.signals import task_completed
from triggerhooks.task import TaskContext


class Announce(TriggerTask):
    name = "tests.plugin_receivers.announce"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        return {"announced": True}


announced: list[str] = []


@on(task_completed, sender=Announce)
def record(sender: Any, task_instance: TaskInstance, **kwargs: Any) -> None:
    announced.append(task_instance.name)
