"""A Django database alias as the URL of the core's PostgreSQL storage.

``TRIGGERHOOKS = {"storage": {"database": "default"}}`` keeps sessions in the
database Django already uses, with its connection settings (user, password,
host, port, name, libpq options such as ``sslmode``). The URL holds the
password: it is only ever handed to the storage, never put in a message (show it
with ``triggerhooks.ext.redact_url``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from triggerhooks import storage_backends

__all__ = ["LIBPQ_OPTIONS", "POSTGRES_SCHEME", "check_postgres_storage", "database_url",
           "postgres_storage_installed", "url_of"]

POSTGRES_SCHEME = "postgresql"

LIBPQ_OPTIONS = frozenset({
    "application_name", "channel_binding", "connect_timeout", "gssencmode", "keepalives",
    "keepalives_count", "keepalives_idle", "keepalives_interval", "options", "passfile",
    "service", "sslcert", "sslcrl", "sslkey", "sslmode", "sslpassword", "sslrootcert",
    "target_session_attrs", "tcp_user_timeout",
})
"""The connection parameters of a database's ``OPTIONS`` that go into the URL (libpq's);
Django's own (``isolation_level``, ``pool``, ``server_side_binding``, ...) stay out."""

_WHERE = "TRIGGERHOOKS['storage']"


def postgres_storage_installed() -> bool:
    """Whether a registered storage opens ``postgresql://`` URLs (the core's PostgreSQL
    storage, ``pip install 'triggerhooks[postgres]'``)."""
    return any(POSTGRES_SCHEME in storage_backends.get_class(key).url_schemes
               for key in storage_backends)


def _host(host: str) -> tuple[str, dict[str, str]]:
    """The host part of the URL, and the query it needs: a Unix socket directory
    (``/var/run/postgresql``) goes into ``?host=``; an IPv6 address gets brackets."""
    if host.startswith("/"):
        return "", {"host": host}
    if ":" in host and not host.startswith("["):
        return f"[{host}]", {}
    return quote(host, safe=""), {}


def _options(params: Mapping[str, Any], extra: Iterable[tuple[str, str]]) -> dict[str, str]:
    found = {str(k): str(v) for k, v in (params.get("OPTIONS") or {}).items()
             if k in LIBPQ_OPTIONS and isinstance(v, str | int) and not isinstance(v, bool)}
    found.update(extra)
    return found


def database_url(alias: str, options: Iterable[tuple[str, str]] = ()) -> str:
    """``postgresql://user:password@host:port/name?options`` for the Django database
    ``alias`` (as connected now: under a test runner, the test database); ``options``
    are added to the query. Raises ``ImproperlyConfigured`` (never showing the password)
    for an unknown alias or one that is not PostgreSQL."""
    if alias not in settings.DATABASES:
        known = ", ".join(map(repr, settings.DATABASES)) or "none"
        raise ImproperlyConfigured(f"{_WHERE} names the database {alias!r}, which DATABASES "
                                   f"does not have (it has: {known})")
    connection = connections[alias]
    if connection.vendor != POSTGRES_SCHEME:
        raise ImproperlyConfigured(
            f"{_WHERE} names the database {alias!r}, whose engine "
            f"({connection.settings_dict.get('ENGINE')}) is {connection.vendor}: only a "
            "PostgreSQL database can keep sessions; give a storage URL instead "
            "(redis://..., sqlite:///...)")
    return url_of(connection.settings_dict, options)


def url_of(params: Mapping[str, Any], options: Iterable[tuple[str, str]] = ()) -> str:
    """The URL of a database's settings (``USER``, ``PASSWORD``, ``HOST``, ``PORT``,
    ``NAME``, ``OPTIONS``), every part percent-encoded."""
    user, password = str(params.get("USER") or ""), str(params.get("PASSWORD") or "")
    credentials = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    host, query = _host(str(params.get("HOST") or ""))
    port = str(params.get("PORT") or "")
    query.update(_options(params, options))
    url = (f"{POSTGRES_SCHEME}://{credentials}{'@' if credentials else ''}{host}"
           f"{':' + quote(port, safe='') if port else ''}"
           f"/{quote(str(params.get('NAME') or ''), safe='')}")
    return url + (f"?{urlencode(query)}" if query else "")


def check_postgres_storage(alias: str) -> None:
    """Raise ``ImproperlyConfigured`` unless the core's PostgreSQL storage is installed."""
    if not postgres_storage_installed():
        raise ImproperlyConfigured(
            f"{_WHERE} names the database {alias!r}, but no installed storage opens "
            f"{POSTGRES_SCHEME}:// URLs: install the core's PostgreSQL storage "
            "(pip install 'triggerhooks[postgres]')")
