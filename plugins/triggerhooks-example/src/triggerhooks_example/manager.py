"""A trigger manager whose tasks go to the queue runner unless they say otherwise."""

from __future__ import annotations

from triggerhooks import TriggerManager


class QueuedTriggerManager(TriggerManager):
    """``trigger_managers.get("example-queued", storage)``: tasks wait for ``run_pending()``."""

    name = "example-queued"
    default_task_runner_name = "example-queue"
