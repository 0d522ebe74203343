"""Importing the modules that define trigger tasks and connect receivers, as Caluma does.

An app's ``triggers`` and ``receivers`` modules (the names of
``TRIGGERHOOKS['autodiscover']``) are imported when Django starts, as the admin
imports ``admin`` modules; so are the modules ``TRIGGERHOOKS['receiver_modules']``
names. Every process that runs Django (web, ``manage.py``, Celery workers that
call ``django.setup()``) then knows the same tasks and receivers.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import module_has_submodule

__all__ = ["import_app_modules", "import_modules", "loaded_modules"]

_loaded: list[str] = []


class _App(Protocol):
    """What is used of an ``AppConfig``."""

    name: str

    @property
    def module(self) -> object: ...


def loaded_modules() -> list[str]:
    """The modules this app imported, in order (for people and tests)."""
    return list(_loaded)


def _remember(name: str) -> None:
    if name not in _loaded:
        _loaded.append(name)


def import_app_modules(app_configs: Iterable[_App], names: Iterable[str]) -> list[str]:
    """Import ``<app>.<name>`` for each app that has such a module; an app without one is
    skipped, while an error inside an existing module propagates (as Django's own
    autodiscovery does). Returns the modules imported, in order."""
    wanted = list(names)
    imported = []
    for app in app_configs:
        for name in wanted:
            if module_has_submodule(app.module, name):
                full = f"{app.name}.{name}"
                importlib.import_module(full)
                _remember(full)
                imported.append(full)
    return imported


def import_modules(names: Iterable[str]) -> list[str]:
    """Import the modules of ``TRIGGERHOOKS['receiver_modules']``; one that cannot be
    imported raises ``ImproperlyConfigured`` naming it (the cause is chained)."""
    imported = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"TRIGGERHOOKS['receiver_modules'] names {name!r}, which cannot be imported: "
                f"{type(exc).__name__}: {exc}") from exc
        _remember(name)
        imported.append(name)
    return imported
