"""The hook implementations: the module the ``triggerhooks`` entry point names."""

from __future__ import annotations

from triggerhooks.ext import Registry, StorageBackend, TaskRunner, TriggerManager, TriggerTask, hookimpl

from .manager import QueuedTriggerManager
from .runner import QueueTaskRunner
from .storage import NamespacedMemoryStorage
from .tasks import Greet


@hookimpl
def triggerhooks_register_managers(registry: Registry[TriggerManager]) -> None:
    registry.register(QueuedTriggerManager)


@hookimpl
def triggerhooks_register_storages(registry: Registry[StorageBackend]) -> None:
    registry.register(NamespacedMemoryStorage)


@hookimpl
def triggerhooks_register_runners(registry: Registry[TaskRunner]) -> None:
    registry.register(QueueTaskRunner)


@hookimpl
def triggerhooks_register_tasks(registry: Registry[TriggerTask]) -> None:
    registry.register(Greet)


@hookimpl
def triggerhooks_receiver_modules() -> list[str]:
    return ["triggerhooks_example.receivers"]
