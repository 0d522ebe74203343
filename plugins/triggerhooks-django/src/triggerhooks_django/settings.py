"""The ``TRIGGERHOOKS`` setting: read, checked and given a shape.

Every problem raises ``ImproperlyConfigured`` naming the key
(``TRIGGERHOOKS['task_runner']``), so a typo fails at start-up with a line that
says what to write instead, rather than later inside a request.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

__all__ = ["DEFAULT_AUTODISCOVER", "SETTING", "TriggerhooksSettings", "get_settings",
           "parse_settings"]

SETTING = "TRIGGERHOOKS"
DEFAULT_AUTODISCOVER = ("triggers", "receivers")
"""The modules looked for in every installed app, as Caluma loads its event receivers."""

_LEVELS = {"WARNING": logging.WARNING, "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL}


@dataclass(frozen=True)
class TriggerhooksSettings:
    """``settings.TRIGGERHOOKS``, checked. ``storage`` is a URL, or ``None`` when
    ``database`` names a Django database alias (or when neither is set: the core's
    default, ``$TRIGGERHOOKS_STORAGE_URL`` else ``sqlite://``)."""

    storage: str | None = None
    database: str | None = None
    database_options: tuple[tuple[str, str], ...] = ()
    manager: str = "default"
    task_runner: str | None = None
    receiver_modules: tuple[str, ...] = ()
    autodiscover: tuple[str, ...] = DEFAULT_AUTODISCOVER
    finalize_log_level: int | None = None


def _key(name: str) -> str:
    return f"{SETTING}[{name!r}]"


def _fail(name: str, message: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{_key(name)} {message}")


def _text(name: str, value: object, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(name, f"must be a non-empty string, not {value!r}")
    return value.strip()


def _module_names(name: str, value: object) -> tuple[str, ...]:
    """A list of dotted module names (a lone string is refused: it is a common slip)."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise _fail(name, f"must be a list of module names, such as [\"app.receivers\"], "
                          f"not {value!r}")
    for item in value:
        if not isinstance(item, str) or not all(part.isidentifier() for part in item.split(".")):
            raise _fail(name, f"holds {item!r}, which is not a dotted module name")
    return tuple(value)


def _storage(value: object) -> tuple[str | None, str | None, tuple[tuple[str, str], ...]]:
    """``(url, database alias, URL options of the alias)`` of the ``storage`` key."""
    if value is None:
        return None, None, ()
    if isinstance(value, str):
        if "://" not in value:
            raise _fail("storage", "must be a storage URL (redis://host:6379/0, "
                                   "sqlite:///path/file.sqlite3, postgresql://...) or "
                                   '{"database": "<alias>"} for a database of DATABASES, '
                                   f"not {value!r}")
        return value, None, ()
    if isinstance(value, Mapping):
        unknown = sorted(set(map(str, value)) - {"database", "options"})
        if unknown or "database" not in value:
            raise _fail("storage", 'as a mapping is {"database": "<alias>"} (with '
                                   '"options": {...} for URL options); '
                        + (f"unknown keys: {', '.join(unknown)}" if unknown
                           else "\"database\" is missing"))
        alias = _text("storage", value["database"])
        options = value.get("options") or {}
        if not isinstance(options, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str | int) and not isinstance(v, bool)
                for k, v in options.items()):
            raise ImproperlyConfigured(f'{_key("storage")}["options"] must map option names to '
                                       f"strings or numbers, not {options!r}")
        return None, alias, tuple((k, str(v)) for k, v in options.items())
    raise _fail("storage", f"must be a URL string or {{\"database\": \"<alias>\"}}, "
                           f"not {type(value).__name__}")


def _finalize_level(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.upper() in _LEVELS:
        return _LEVELS[value.upper()]
    if isinstance(value, int) and not isinstance(value, bool) and value >= logging.WARNING:
        return value
    raise _fail("finalize_log_level", "must be None, a level of WARNING or above "
                                      f"(logging.ERROR, \"ERROR\"), not {value!r}")


_KNOWN = ("storage", "manager", "task_runner", "receiver_modules", "autodiscover",
          "finalize_log_level")


def parse_settings(value: object) -> TriggerhooksSettings:
    """Check a ``TRIGGERHOOKS`` mapping (``None``: not set) and give it a shape. Only the
    shape: whether the names it holds are registered is checked by ``apps.check_names``."""
    if value is None:
        return TriggerhooksSettings()
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(f"{SETTING} must be a dict, not {type(value).__name__}")
    for key in value:
        if key not in _KNOWN:
            close = difflib.get_close_matches(str(key), _KNOWN, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ImproperlyConfigured(f"{_key(str(key))} is not a setting{hint}; the settings "
                                       f"are: {', '.join(_KNOWN)}")
    storage, database, options = _storage(value.get("storage"))
    return TriggerhooksSettings(
        storage=storage, database=database, database_options=options,
        manager=_text("manager", value.get("manager", "default")) or "default",
        task_runner=_text("task_runner", value.get("task_runner"), optional=True),
        receiver_modules=_module_names("receiver_modules", value.get("receiver_modules", [])),
        autodiscover=_module_names("autodiscover",
                                   value.get("autodiscover", list(DEFAULT_AUTODISCOVER))),
        finalize_log_level=_finalize_level(value.get("finalize_log_level")),
    )


def get_settings() -> TriggerhooksSettings:
    """``settings.TRIGGERHOOKS`` as it is now (read on each call: ``override_settings``
    and settings changed at run time are seen)."""
    raw: Any = getattr(django_settings, SETTING, None)
    return parse_settings(raw)
