"""Storage URLs: which backend a URL opens, a storage rebuilt from its reference, and URLs
as people see them (never with a password).

:func:`open_storage` picks a backend of ``storage_backends`` by the URL's
scheme, such as ``redis://host/0``, ``sqlite:///path/to/file.sqlite3`` or
``memory://``; the default, ``sqlite://``, is the file
``$TRIGGERHOOKS_SQLITE_PATH``, else ``triggerhooks.sqlite3``.
"""

from __future__ import annotations

import os
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

from ..exceptions import UnknownKeyError
from ..registries import storage_backends
from ..serialization import JsonDict
from .base import StorageBackend
from .sqlite import split_sqlite_url, sqlite_file

__all__ = ["DEFAULT_STORAGE_URL", "STORAGE_URL_ENV", "open_reference", "open_storage", "redact_url",
           "shown_url", "storage_backends", "storage_location", "strip_password", "url_scheme"]

STORAGE_URL_ENV = "TRIGGERHOOKS_STORAGE_URL"
DEFAULT_STORAGE_URL = "sqlite://"
"""SQLite in the file ``$TRIGGERHOOKS_SQLITE_PATH``, else ``triggerhooks.sqlite3`` in the
working directory."""



def url_scheme(url: str) -> str:
    """The scheme of a storage URL, in lower case (``""`` for a URL without ``://``)."""
    return url.partition("://")[0].lower() if "://" in url else ""


def _replace_password(url: str, replacement: str | None) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    if replacement is not None:
        user = f"{user}:{replacement}"
    return parts._replace(netloc=f"{user}@{host}" if user else host).geturl()


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs."""
    return _replace_password(url, "***")


def strip_password(url: str) -> str:
    """``url`` without any password (its user stays), for references sent to other processes."""
    return _replace_password(url, None)


def shown_url(url: str) -> str:
    """``url`` for people: without its password, and a SQLite URL without a path shows
    the file it uses."""
    if url_scheme(url) == "sqlite":
        # Not a usable SQLite URL, or an unusable $TRIGGERHOOKS_SQLITE_PATH: opening it says so.
        with suppress(ValueError):
            path, query = split_sqlite_url(url)
            if path is None:
                url = f"sqlite:///{sqlite_file()}" + (f"?{query}" if query else "")
    return redact_url(url)


def storage_location(url: str) -> str | None:
    """Where a storage URL keeps its sessions, for people: the SQLite file, the server
    (without password), or ``None`` for memory (sessions that end with the process)."""
    scheme = url_scheme(url)
    if scheme == "memory":
        return None
    if scheme == "sqlite":
        with suppress(ValueError):
            return sqlite_file(split_sqlite_url(url)[0])
    return redact_url(url)


def open_storage(url: str | None, uid: str, **options: Any) -> StorageBackend:
    """The storage for session ``uid`` at ``url`` (default: ``$TRIGGERHOOKS_STORAGE_URL``,
    else ``sqlite://``: the file ``$TRIGGERHOOKS_SQLITE_PATH``, else
    ``triggerhooks.sqlite3`` in the working directory); the URL's scheme selects the backend.

    A scheme no backend handles raises :class:`UnknownKeyError` listing the known schemes.
    """
    url = url or os.environ.get(STORAGE_URL_ENV) or DEFAULT_STORAGE_URL
    scheme = url_scheme(url)
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
