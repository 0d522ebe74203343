"""An example triggerhooks plugin that uses every hook.

Installing the distribution is all it takes: triggerhooks finds it through the
``triggerhooks`` entry point and registers

* the storage backend ``example-namespaced`` (URL scheme ``example-ns://``),
* the task runner ``example-queue``,
* the trigger manager ``example-queued``,
* the trigger task ``triggerhooks_example.greet``,
* the receiver module ``triggerhooks_example.receivers``.
"""

from __future__ import annotations

from .manager import QueuedTriggerManager
from .runner import QueueTaskRunner
from .storage import NamespacedMemoryStorage
from .tasks import Greet

__all__ = ["Greet", "NamespacedMemoryStorage", "QueueTaskRunner", "QueuedTriggerManager"]
