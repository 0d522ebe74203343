"""Storage backends and their registry (``storage_backends``).

Built-in keys: ``memory``, ``sqlite`` (the embedded default), ``redis`` and ``postgresql``
(its driver an extra: ``pip install "triggerhooks[postgres]"``).
:func:`open_storage` picks one from a URL such as ``redis://host/0``,
``sqlite:///path/to/file.sqlite3`` or ``memory://``; the default, ``sqlite://``,
is the file ``$TRIGGERHOOKS_SQLITE_PATH``, else ``triggerhooks.sqlite3``.

This package only re-exports: the abstraction is in ``base``, the backends in
``memory``, ``sqlite``, ``redis`` and ``postgresql``, and URLs, references and the registry in
``urls``.
"""

from __future__ import annotations

from ..core.types import Changes, Commit, Plan, SessionView, TaskState
from .base import StorageBackend
from .memory import MemoryStorageBackend, MemoryStore
from .postgresql import POSTGRES_URL_ENV, PostgresStorageBackend
from .redis import REDIS_PREFIX_ENV, REDIS_URL_ENV, RedisStorageBackend
from .sqlite import SQLITE_PATH_ENV, SqliteStorageBackend
from .urls import (
    DEFAULT_STORAGE_URL,
    STORAGE_URL_ENV,
    open_reference,
    open_storage,
    redact_url,
    storage_backends,
)

__all__ = [
    "DEFAULT_STORAGE_URL",
    "POSTGRES_URL_ENV",
    "REDIS_PREFIX_ENV",
    "REDIS_URL_ENV",
    "SQLITE_PATH_ENV",
    "STORAGE_URL_ENV",
    "Changes",
    "Commit",
    "MemoryStorageBackend",
    "MemoryStore",
    "Plan",
    "PostgresStorageBackend",
    "RedisStorageBackend",
    "SessionView",
    "SqliteStorageBackend",
    "StorageBackend",
    "TaskState",
    "open_reference",
    "open_storage",
    "redact_url",
    "storage_backends",
]
