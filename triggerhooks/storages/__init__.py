"""Storage backends and their registry (``storage_backends``).

Built-in keys: ``memory``, ``sqlite`` (the embedded default) and ``redis``.
:func:`open_storage` picks one from a URL such as ``redis://host/0``,
``sqlite:///path/to/file.sqlite3`` or ``memory://``; the default, ``sqlite://``,
is the file ``$TRIGGERHOOKS_SQLITE_PATH``, else ``triggerhooks.sqlite3``.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from ..core.types import Changes, Commit, Plan, SessionView, TaskState
from ..exceptions import UnknownKeyError
from ..registries import storage_backends
from ..serialization import JsonDict
from .base import StorageBackend
from .memory import MemoryStorageBackend, MemoryStore
from .redis import REDIS_PREFIX_ENV, REDIS_URL_ENV, RedisStorageBackend
from .sqlite import SQLITE_PATH_ENV, SqliteStorageBackend

__all__ = [
    "DEFAULT_STORAGE_URL",
    "REDIS_PREFIX_ENV",
    "REDIS_URL_ENV",
    "SQLITE_PATH_ENV",
    "STORAGE_URL_ENV",
    "Changes",
    "Commit",
    "MemoryStorageBackend",
    "MemoryStore",
    "Plan",
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

STORAGE_URL_ENV = "TRIGGERHOOKS_STORAGE_URL"
DEFAULT_STORAGE_URL = "sqlite://"
"""SQLite in the file ``$TRIGGERHOOKS_SQLITE_PATH``, else ``triggerhooks.sqlite3`` in the
working directory."""


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc[2]}").geturl()


def open_storage(url: str | None, uid: str, **options: Any) -> StorageBackend:
    """The storage for session ``uid`` at ``url`` (default: ``$TRIGGERHOOKS_STORAGE_URL``,
    else ``sqlite://``: the file ``$TRIGGERHOOKS_SQLITE_PATH``, else
    ``triggerhooks.sqlite3`` in the working directory); the URL's scheme selects the backend.

    A scheme no backend handles raises :class:`UnknownKeyError` listing the known schemes.
    """
    url = url or os.environ.get(STORAGE_URL_ENV) or DEFAULT_STORAGE_URL
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    for key in storage_backends:
        cls = storage_backends.get_class(key)
        if scheme in cls.url_schemes:
            return cls.from_url(url, uid, **options)
    known = {s for k in storage_backends for s in storage_backends.get_class(k).url_schemes}
    where = f"URL {redact_url(url)!r}" + ("" if scheme else " has no scheme://")
    raise UnknownKeyError("storage URL scheme", scheme, known, where)


def open_reference(reference: JsonDict) -> StorageBackend:
    """Rebuild a storage from :meth:`StorageBackend.reference` (what workers receive)."""
    cls = storage_backends.get_class(reference["backend"])
    return cls.from_reference(reference)
