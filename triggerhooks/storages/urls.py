"""Storage URLs: which backend a URL opens, a storage rebuilt from its reference, and URLs
as people see them (never with a password).

:func:`open_storage` picks a backend of ``storage_backends`` by the URL's
scheme, such as ``redis://host/0``, ``sqlite:///path/to/file.sqlite3`` or
``memory://``; the default, ``sqlite://``, is the file
``$TRIGGERHOOKS_SQLITE_PATH``, else ``triggerhooks.sqlite3``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from contextlib import suppress
from typing import Any
from urllib.parse import unquote, unquote_plus

from ..exceptions import UnknownKeyError
from ..registries import failed_plugins_hint, storage_backends
from ..serialization import JsonDict
from .base import StorageBackend
from .sqlite import split_sqlite_url, sqlite_file

__all__ = ["DEFAULT_STORAGE_URL", "SECRET_OPTION_WORDS", "STORAGE_URL_ENV", "open_reference",
           "open_storage", "redact_text", "redact_url", "shown_url", "split_options",
           "storage_backends", "storage_location", "strip_password", "url_problem", "url_scheme",
           "url_secrets"]

STORAGE_URL_ENV = "TRIGGERHOOKS_STORAGE_URL"
DEFAULT_STORAGE_URL = "sqlite://"
"""SQLite in the file ``$TRIGGERHOOKS_SQLITE_PATH``, else ``triggerhooks.sqlite3`` in the
working directory."""



def url_scheme(url: str) -> str:
    """The scheme of a storage URL, in lower case (``""`` for a URL without ``://``)."""
    return url.partition("://")[0].lower() if "://" in url else ""


SECRET_OPTION_WORDS = ("password", "passwd", "pwd", "secret", "token", "credential")
"""A URL query option whose name contains one of these is a secret (``?password=``,
``?ssl_password=``): redacted in messages, left out of references."""
_MASK = "***"


def _is_secret_option(piece: str) -> bool:
    name = unquote_plus(piece.partition("=")[0]).lower()
    return any(word in name for word in SECRET_OPTION_WORDS)


def _clean_query(query: str, mask: str | None) -> str:
    """``query`` with the values of secret options masked (or the options left out)."""
    pieces = []
    for piece in query.split("&"):
        if not _is_secret_option(piece):
            pieces.append(piece)
        elif mask is not None:
            pieces.append(f"{piece.partition('=')[0]}={mask}")
    return "&".join(pieces)


def _clean_host(host: str, mask: str | None) -> str:
    """``host[:port]`` with a port that is not a number masked: what a password with an
    unescaped ``#``, ``/`` or ``?`` leaves there (``redis://:pa#ss@host``)."""
    name, colon, port = host.rpartition(":")
    if not colon or not port or port.isdigit() or port.endswith("]"):
        return host
    return f"{name}:{mask or ''}"


_HEAD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?://)?")


def _split(url: str) -> tuple[str, str, str]:
    """``url`` as its head (``scheme://``, or ``scheme:`` for a URL without an authority),
    its authority (``user:password@host:port``) and the rest (path, query, fragment)."""
    match = _HEAD.match(url)
    head = match.group() if match else ""
    rest = url[len(head):]
    end = _authority_end(rest) if head.endswith("//") else 0
    return head, rest[:end], rest[end:]


def _authority_end(rest: str) -> int:
    """Where the authority (``user:password@host:port``) of a URL after ``://`` ends."""
    return min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))


def _clean_tail(tail: str, mask: str | None) -> str:
    """A URL's path, query and fragment with secret options and the fragment masked (or
    left out)."""
    path, hash_, _ = tail.partition("#")
    path, question, query = path.partition("?")
    query = _clean_query(query, mask) if question else ""
    return path + (f"?{query}" if query else "") + (f"#{mask}" if hash_ and mask else "")


def _clean(url: str, mask: str | None) -> str:
    """``url`` with every secret it may hold masked (``mask``) or left out (``None``): the
    password of its user-info, secret query options, a fragment; when an ``@`` follows the
    host (a password with an unescaped ``/``, ``?`` or ``#``), all before the last ``@``."""
    head, netloc, tail = _split(url)
    if "@" in tail:
        cleaned = _clean(head + tail[tail.rfind("@") + 1:], mask)
        return head + (f"{mask}@" if mask else "") + cleaned[len(head):]
    userinfo, has_userinfo, host = netloc.rpartition("@")
    if has_userinfo:
        user, colon, _ = userinfo.partition(":")
        userinfo = (f"{user}:{mask}" if mask else user) if colon else user
    netloc = (f"{userinfo}@" if userinfo else "") + _clean_host(host, mask)
    return head + netloc + _clean_tail(tail, mask)


def url_problem(url: str) -> str | None:
    """Why the secrets of ``url`` cannot be told from the rest of it, or ``None``: an ``@``
    after the host means a password holds an unescaped ``/``, ``?`` or ``#`` (or an option
    an ``@``), and what a library would take for the password is not what was meant."""
    if "@" in _split(url)[2]:
        return ("an '@' follows the host: percent-encode '@', '/', '?' and '#' in a password "
                "or an option (%40, %2F, %3F, %23)")
    return None


def redact_url(url: str) -> str:
    """``url`` with every secret replaced by ``***``, for messages and logs: the password of
    its user-info (``redis://user:***@host``), query options such as ``?password=***``, a
    fragment; for a URL whose password holds an unescaped ``/``, ``?`` or ``#``, everything
    up to its last ``@``. Never raises, whatever the text."""
    return _clean(url, _MASK)


def strip_password(url: str) -> str:
    """``url`` without any secret (its user stays), for references sent to other processes:
    what :func:`redact_url` masks is left out."""
    return _clean(url, None)


def url_secrets(url: str) -> list[str]:
    """The secrets ``url`` may hold (raw and percent-decoded), longest first, for
    :func:`redact_text`; empty for a URL without any."""
    head, netloc, tail = _split(url)
    rest = netloc + tail
    found: set[str] = set()
    at = rest.rfind("@")
    if at >= 0:
        userinfo = rest[:at]
        # Without "//" there is no user-info: all before the "@" may be a password.
        found.add(userinfo.partition(":")[2] if head.endswith("//") else userinfo)
        if any(char in userinfo for char in "/?#"):
            found.add(userinfo)
    host = netloc.rpartition("@")[2]
    if _clean_host(host, None) != host:
        found.add(host.rpartition(":")[2])
    for piece in rest.partition("?")[2].partition("#")[0].split("&"):
        if _is_secret_option(piece):
            found.add(piece.partition("=")[2])
    found.add(rest.partition("#")[2])
    found |= {unquote(secret) for secret in found} | {unquote_plus(secret) for secret in found}
    return sorted((secret for secret in found if secret), key=len, reverse=True)


def split_options(url: str, names: Iterable[str]) -> tuple[str, dict[str, str]]:
    """``url`` without the query options ``names`` (the rest as it was written), and their
    values (the last of each)."""
    base, question, rest = url.partition("?")
    query, hash_, fragment = rest.partition("#")
    wanted = set(names)
    kept: list[str] = []
    found: dict[str, str] = {}
    for piece in query.split("&") if question else ():
        key, _, value = piece.partition("=")
        if unquote_plus(key) in wanted:
            found[unquote_plus(key)] = unquote_plus(value)
        elif piece:
            kept.append(piece)
    return base + ("?" + "&".join(kept) if kept else "") + hash_ + fragment, found


def redact_text(text: str, *urls: str) -> str:
    """``text`` (an error message, a library's) with every secret of ``urls`` replaced by
    ``***``."""
    for url in urls:
        for secret in url_secrets(url):
            text = text.replace(secret, _MASK)
    return text


def shown_url(url: str) -> str:
    """``url`` for people: without its password, and a SQLite URL names the absolute file it
    uses (a relative path depends on the working directory; no path is the default file)."""
    if url_scheme(url) == "sqlite":
        # Not a usable SQLite URL, or an unusable $TRIGGERHOOKS_SQLITE_PATH: opening it says so.
        with suppress(ValueError):
            path, query = split_sqlite_url(url)
            url = f"sqlite:///{sqlite_file(path)}" + (f"?{query}" if query else "")
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

    A scheme no backend handles raises :class:`UnknownKeyError` listing the known schemes
    (and the plugins that failed to load).
    """
    url = url or os.environ.get(STORAGE_URL_ENV) or DEFAULT_STORAGE_URL
    scheme = url_scheme(url)
    for key in storage_backends:
        cls = storage_backends.get_class(key)
        if scheme in cls.url_schemes:
            return cls.from_url(url, uid, **options)
    known = {s for k in storage_backends for s in storage_backends.get_class(k).url_schemes}
    where = f"URL {redact_url(url)!r}" + ("" if scheme else " has no scheme://")
    failed = failed_plugins_hint()  # a scheme is often a plugin's that did not load
    raise UnknownKeyError("storage URL scheme", scheme, known,
                          f"{where}; {failed}" if failed else where)


def open_reference(reference: JsonDict) -> StorageBackend:
    """Rebuild a storage from :meth:`StorageBackend.reference` (what workers receive)."""
    cls = storage_backends.get_class(reference["backend"])
    return cls.from_reference(reference)
