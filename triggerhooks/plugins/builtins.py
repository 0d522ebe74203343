"""The built-in managers, storages and runners, registered through the plugin hooks."""

from __future__ import annotations

from typing import Any

from .manager import TriggerManager
from .plugins import hookimpl
from .runners import InlineTaskRunner, ThreadingTaskRunner
from .storages import MemoryStorageBackend
from .storages.redis import RedisStorageBackend
from .storages.sqlite import SqliteStorageBackend


@hookimpl
def triggerhooks_register_managers(registry: Any) -> None:
    registry.register("default")(TriggerManager)


@hookimpl
def triggerhooks_register_storages(registry: Any) -> None:
    registry.register("memory")(MemoryStorageBackend)
    registry.register("sqlite")(SqliteStorageBackend)
    registry.register("redis")(RedisStorageBackend)


@hookimpl
def triggerhooks_register_runners(registry: Any) -> None:
    registry.register("inline")(InlineTaskRunner)
    registry.register("threading")(ThreadingTaskRunner)
