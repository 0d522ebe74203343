"""What a Redis storage is given, checked: its URL (whose secrets never leave the process),
its key prefix and TTL, and the URL a worker completes a storage reference with.

A reference (what a runner sends to workers) carries the URL without its secrets (the
password of its user-info, ``?password=`` and other secret options) and says that it
left one out (``secretWithheld``). A worker completes it with a URL of its own that
reaches the same address: one its process already connected with, else
``$TRIGGERHOOKS_REDIS_URL``, else ``$TRIGGERHOOKS_STORAGE_URL``; it never takes a password
from a message.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ...exceptions import InvalidSettingError, StorageUnavailableError
from ...models import name_problem
from ...serialization import safe_text
from ..urls import redact_url, split_options, strip_password, url_problem, url_secrets

__all__ = ["MAX_TTL", "check_prefix", "check_url", "complete_url", "parse_ttl", "split_options",
           "withholds_secret"]

MAX_TTL = 10**9
"""The longest TTL a session may be given, in seconds (about 31 years): Redis refuses
expiry times past what its clock can count."""


def parse_ttl(value: Any, where: str = "") -> float | None:
    """``value`` (a number, or the text of ``?ttl=``) as a TTL in seconds, or ``None``.

    Raises :class:`InvalidSettingError` naming ``ttl`` (and ``where`` it came from)
    for anything but a finite positive number up to :data:`MAX_TTL`."""
    if value is None:
        return None
    try:
        ttl = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        ttl = math.nan
    if not 0 < ttl <= MAX_TTL:
        raise InvalidSettingError(
            f"ttl must be a positive number of seconds, at most {MAX_TTL:,}, not "
            f"{safe_text(repr(value))}{where}")
    return ttl


def check_prefix(prefix: str) -> str:
    """A key prefix, refused (:class:`InvalidSettingError`) if it would break the key
    layout (braces make Redis Cluster hash tags) or cannot be stored."""
    if not isinstance(prefix, str):
        raise InvalidSettingError(f"a Redis key prefix must be a string, not {prefix!r}")
    if "{" in prefix or "}" in prefix:
        raise InvalidSettingError(f"a Redis key prefix cannot contain braces: {prefix!r}")
    problem = name_problem(prefix)
    if problem:
        raise InvalidSettingError(f"Redis key prefix {safe_text(prefix)!r} {problem}")
    return prefix


def check_url(url: str) -> str:
    """``url``, refused (:class:`InvalidSettingError`, the URL redacted) when its secrets
    cannot be told from the rest of it."""
    if not isinstance(url, str) or not url:
        raise InvalidSettingError(f"a Redis URL must be a non-empty string, not {url!r}")
    problem = url_problem(url)
    if problem:
        raise InvalidSettingError(f"Redis URL {redact_url(url)!r}: {problem}")
    return url


def withholds_secret(url: str, password: object = None) -> bool:
    """Whether a reference to ``url`` (reached with ``password``) leaves a secret out."""
    return bool(url_secrets(url)) or bool(password)


def complete_url(reference_url: str, withheld: bool, candidates: Iterable[str]) -> str:
    """The URL a worker connects with for a reference's URL: the first of ``candidates``
    (its own URLs) that, without its secrets, is the reference's URL; else the reference's
    URL itself, unless a secret was withheld from it (:class:`StorageUnavailableError`:
    the worker has no password for that server)."""
    for known in candidates:
        if known and known != reference_url and strip_password(known) == reference_url:
            return known
    if withheld:
        raise StorageUnavailableError(
            f"Redis at {redact_url(reference_url)}: the storage reference leaves its password "
            "out (references never carry one), and this process has no URL with a password for "
            "that address: set $TRIGGERHOOKS_REDIS_URL (or $TRIGGERHOOKS_STORAGE_URL) in the "
            "worker to the same URL with its password")
    return reference_url
