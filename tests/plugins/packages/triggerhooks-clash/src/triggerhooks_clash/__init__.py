"""Registers the runner key ``example-queue``, which triggerhooks-example registers too."""

from __future__ import annotations

from typing import Any

from triggerhooks import InlineTaskRunner, MemoryStorageBackend
from triggerhooks.ext import hookimpl


class ClashRunner(InlineTaskRunner):
    name = "example-queue"


class ClashStorage(MemoryStorageBackend):
    name = "clash-only"


@hookimpl
def triggerhooks_register_storages(registry: Any) -> None:
    registry.register(ClashStorage)


@hookimpl
def triggerhooks_register_runners(registry: Any) -> None:
    registry.register(ClashRunner)
