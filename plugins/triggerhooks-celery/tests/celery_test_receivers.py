"""A background receiver; imported by the test process (to connect it) and by a worker."""

from __future__ import annotations

import os
import socket
from typing import Any

import orjson
from celery_test_tasks import PREFIX, Announce, client

from triggerhooks import TaskInstance, TriggerManager, on
from triggerhooks.ext import task_completed

RECEIVED = f"{PREFIX}received"


@on(task_completed, sender=Announce, background=True)
def announced(sender: Any, task_instance: TaskInstance, result: dict[str, Any],
              manager: TriggerManager, **kwargs: Any) -> None:
    stored = manager.storage[task_instance.name]
    client().rpush(RECEIVED, orjson.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "sender": sender.name,
        "instance": task_instance.name, "status": task_instance.status.value, "result": result,
        "stored": stored.status.value}))
