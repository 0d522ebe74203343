"""The built-in managers, storages and runners: a plugin, registered through the same hooks
as any third-party plugin (one path for both)."""

from __future__ import annotations

from typing import Any

from ..manager import TriggerManager
from ..runners import InlineTaskRunner, ThreadingTaskRunner
from ..storages import (
    MemoryStorageBackend,
    PostgresStorageBackend,
    RedisStorageBackend,
    SqliteStorageBackend,
)
from .hookspecs import hookimpl


@hookimpl
def triggerhooks_register_managers(registry: Any) -> None:
    registry.register("default")(TriggerManager)


@hookimpl
def triggerhooks_register_storages(registry: Any) -> None:
    registry.register("memory")(MemoryStorageBackend)
    registry.register("sqlite")(SqliteStorageBackend)
    registry.register("redis")(RedisStorageBackend)
    registry.register("postgresql")(PostgresStorageBackend)


@hookimpl
def triggerhooks_register_runners(registry: Any) -> None:
    registry.register("inline")(InlineTaskRunner)
    registry.register("threading")(ThreadingTaskRunner)
