"""A plugin whose hook name is misspelled (``storage`` for ``storages``)."""

from __future__ import annotations

from typing import Any

from triggerhooks import MemoryStorageBackend
from triggerhooks.ext import hookimpl


class MisspelledStorage(MemoryStorageBackend):
    name = "misspelled"


@hookimpl
def triggerhooks_register_storage(registry: Any) -> None:
    registry.register(MisspelledStorage)
