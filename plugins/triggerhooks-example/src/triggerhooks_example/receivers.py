"""Signal receivers, connected when triggerhooks imports this module.

The plugin names this module in its ``triggerhooks_receiver_modules`` hook;
triggerhooks imports it when the first trigger manager is created.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from triggerhooks import TaskInstance, on, send_event
from triggerhooks.ext import task_completed

from .events import greeted
from .tasks import Greet

log = logging.getLogger(__name__)

recent_greetings: deque[str] = deque(maxlen=100)
"""The latest greetings, newest last."""


@on(task_completed, sender=Greet)
def remember_greeting(sender: Any, task_instance: TaskInstance, result: dict[str, Any],
                      **kwargs: Any) -> None:
    recent_greetings.append(result["greeting"])
    log.info("%s greeted: %s", task_instance.name, result["greeting"])
    send_event(greeted, sender=Greet, greeting=result["greeting"])
