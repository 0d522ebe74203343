"""What a PostgreSQL storage is given, checked: its URL (whose secrets never leave the
process), the options triggerhooks reads from it, the names it stores, the lock a
session's writers take turns on, and the URL a worker completes a reference with.

Nothing here talks to the server or needs psycopg.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from ...exceptions import InvalidSettingError, StorageUnavailableError
from ...models import name_problem
from ...serialization import safe_text
from ..urls import redact_url, split_options, strip_password, url_problem, url_scheme

__all__ = ["DEFAULT_POSTGRES_URL", "DEFAULT_SCHEMA", "MAX_SECONDS", "POSTGRES_URL_ENV",
           "SCHEMES", "Settings", "complete_url", "loaded_name", "lock_key", "quote_ident",
           "stored_name"]

POSTGRES_URL_ENV = "TRIGGERHOOKS_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://"
"""libpq's defaults: ``$PGHOST``, ``$PGUSER``, ``$PGDATABASE``, ... else the local socket."""
SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
DEFAULT_SCHEMA = "public"
MAX_SECONDS = 86400.0
"""The longest wait a storage may be given, in seconds (a day)."""
OUR_OPTIONS = ("schema", "timeout", "pool_size", "pool_timeout")
"""Query options triggerhooks reads from a URL; every other one goes to libpq."""


def _seconds(name: str, value: Any, where: str) -> float:
    """``value`` as a number of seconds above 0, up to :data:`MAX_SECONDS`."""
    try:
        seconds = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not 0 < seconds <= MAX_SECONDS:
        raise InvalidSettingError(f"{name} must be a number of seconds above 0, at most "
                                  f"{MAX_SECONDS:g}, not {safe_text(repr(value))}{where}")
    return seconds


def _size(value: Any, where: str) -> int:
    try:
        size = int(value) if not isinstance(value, bool | float) else -1
    except (TypeError, ValueError):
        size = -1
    if not 1 <= size <= 1000:
        raise InvalidSettingError(f"pool_size must be a whole number from 1 to 1000, not "
                                  f"{safe_text(repr(value))}{where}")
    return size


def _schema(value: Any, where: str) -> str:
    """A schema name PostgreSQL can hold (63 bytes at most, no NUL)."""
    if not isinstance(value, str) or not value:
        raise InvalidSettingError(f"schema must be a non-empty string, not {value!r}{where}")
    problem = ("contains a NUL character" if "\0" in value else name_problem(value)
               or ("is longer than 63 bytes" if len(value.encode()) > 63 else None))
    if problem:
        raise InvalidSettingError(f"schema {safe_text(value)!r} {problem}{where}")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    """Where a storage's sessions live and how it waits, checked.

    ``url`` is the URL as given without triggerhooks's options (it may hold a password:
    show it only through :func:`redact_url`); ``conninfo`` is what libpq is given.
    """

    url: str
    schema: str
    timeout: float
    pool_size: int
    pool_timeout: float

    @classmethod
    def of(cls, url: str, schema: str | None = None, timeout: float | None = None,
           pool_size: int | None = None, pool_timeout: float | None = None) -> Settings:
        """Check ``url`` and the options (those given here win over the URL's own)."""
        if not isinstance(url, str):
            raise InvalidSettingError(f"a PostgreSQL URL must be a string, not {url!r}")
        if url_scheme(url) not in SCHEMES:
            raise InvalidSettingError(f"not a PostgreSQL URL: {redact_url(url)!r} (expected "
                                      "postgresql://user@host:5432/database)")
        problem = url_problem(url)
        if problem:
            raise InvalidSettingError(f"PostgreSQL URL {redact_url(url)!r}: {problem}")
        rest, ours = split_options(url, OUR_OPTIONS)
        where = f" (in URL {redact_url(url)!r})"
        return cls(
            rest,
            _schema(schema if schema is not None else ours.get("schema", DEFAULT_SCHEMA),
                    "" if schema is not None else where),
            _seconds("timeout", timeout if timeout is not None else ours.get("timeout", 30.0),
                     "" if timeout is not None else where),
            _size(pool_size if pool_size is not None else ours.get("pool_size", 10),
                  "" if pool_size is not None else where),
            _seconds("pool_timeout", pool_timeout if pool_timeout is not None
                     else ours.get("pool_timeout", 5.0), "" if pool_timeout is not None else where))

    @property
    def conninfo(self) -> str:
        """The URL for libpq, which knows only the ``postgresql://`` and ``postgres://`` schemes."""
        scheme, sep, rest = self.url.partition("://")
        return f"postgresql{sep}{rest}" if scheme.lower() == "postgresql+psycopg" else self.url

    @property
    def pool_key(self) -> Settings:
        """These settings but the schema: what one pool of connections serves."""
        return replace(self, schema=DEFAULT_SCHEMA)

    @property
    def shown(self) -> str:
        """The URL for people: its secrets replaced by ``***``."""
        return redact_url(self.url)


# -- names ----------------------------------------------------------------------------------

_MARK = "\x01"
_ESCAPED = re.compile(r"\\([\\0])")


def stored_name(name: str) -> str:
    """``name`` (a uid, trigger, task, instance or key) as a text column holds it.

    PostgreSQL text cannot hold NUL, which a name may: such a name (and any that starts
    with the marker ``\\x01``) is stored as the marker and the name with ``\\`` and NUL
    escaped. Every other name is stored as it is."""
    if "\0" not in name and not name.startswith(_MARK):
        return name
    return _MARK + name.replace("\\", "\\\\").replace("\0", "\\0")


def loaded_name(text: str) -> str:
    """The name a text column holds (see :func:`stored_name`)."""
    if not text.startswith(_MARK):
        return text
    return _ESCAPED.sub(lambda match: "\0" if match.group(1) == "0" else "\\", text[1:])


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def lock_key(schema: str, uid: str) -> int:
    """The advisory lock a session's writers take turns on: 64 bits of a hash of the schema
    and the uid (two sessions that share one only take turns)."""
    digest = hashlib.blake2b(f"{schema}\0{uid}".encode("utf-8", "surrogatepass"),
                             digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# -- references -------------------------------------------------------------------------------

def _has_password_source() -> bool:
    """libpq finds a password of its own: ``$PGPASSWORD`` or a password file."""
    if os.environ.get("PGPASSWORD"):
        return True
    passfile = os.environ.get("PGPASSFILE") or os.path.expanduser("~/.pgpass")
    return os.path.isfile(passfile)


def complete_url(reference_url: str, withheld: bool, candidates: Iterable[str]) -> str:
    """The URL a worker connects with for a reference's URL (which never holds a secret):
    the first of ``candidates`` (URLs of its own) that is the same URL with its secrets;
    else the reference's URL, when nothing was left out or libpq finds a password of its
    own (``$PGPASSWORD``, a password file); else :class:`StorageUnavailableError`, which
    says what to set."""
    for known in candidates:
        if not known or url_scheme(known) not in SCHEMES:
            continue
        base = split_options(known, OUR_OPTIONS)[0]
        if base != reference_url and strip_password(base) == reference_url:
            return base
    if withheld and not _has_password_source():
        raise StorageUnavailableError(
            f"PostgreSQL at {redact_url(reference_url)}: the storage reference leaves its "
            "password out (references never carry one), and this process has no URL with a "
            f"password for that address: set ${POSTGRES_URL_ENV} (or $TRIGGERHOOKS_STORAGE_URL) "
            "in the worker to the same URL with its password, or give libpq one ($PGPASSWORD, "
            "~/.pgpass)")
    return reference_url
