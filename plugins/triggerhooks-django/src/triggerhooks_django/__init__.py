"""triggerhooks in a Django project: ``INSTALLED_APPS += ["triggerhooks_django"]``.

Settings in ``TRIGGERHOOKS`` (storage, runner, receiver modules, finalize level);
every app's ``triggers``/``receivers`` module loaded at start-up; managers built
from the settings (:func:`get_manager`); :func:`fire_on_commit` for firing once
the database transaction commits; ``manage.py triggerhooks ...``; an admin of
sessions and instances. See ``docs/django.md``.

Importing this package needs no configured settings: the names below import
Django's machinery only when they are used. It registers the adapter that lets
``@on`` and ``filter_events`` take Django signals (``@on(post_save, sender=Answer)``,
see :mod:`.signals`); Django imports every installed app before any app is ready,
so receiver modules anywhere in the project can count on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from triggerhooks.ext import register_signal_adapter

from .signals import DJANGO_SIGNALS

if TYPE_CHECKING:
    from triggerhooks import StorageBackend, TriggerManager

    from .settings import TriggerhooksSettings

__all__ = ["fire_on_commit", "get_manager", "get_settings", "open_session_storage",
           "storage_url"]

register_signal_adapter(DJANGO_SIGNALS)


def get_manager(session: str) -> TriggerManager:
    """A manager on ``session`` as ``settings.TRIGGERHOOKS`` says (see :mod:`.managers`)."""
    from .managers import get_manager as build

    return build(session)


def open_session_storage(session: str) -> StorageBackend:
    """The storage of ``session`` where the settings keep sessions."""
    from .managers import open_session_storage as open_

    return open_(session)


def storage_url() -> str | None:
    """The storage URL the settings name (it may hold a password: never show it)."""
    from .managers import storage_url as url

    return url()


def get_settings() -> TriggerhooksSettings:
    """``settings.TRIGGERHOOKS``, checked (see :mod:`.settings`)."""
    from .settings import get_settings as read

    return read()


def fire_on_commit(session: str, trigger: str, kwargs: Mapping[str, Any] | None = None, *,
                   using: str | None = None, key: str | None = None,
                   robust: bool = False) -> None:
    """Fire ``trigger`` into ``session`` once the current transaction of ``using`` commits,
    never if it rolls back (see :func:`.transactions.fire_on_commit`)."""
    from .transactions import fire_on_commit as fire

    fire(session, trigger, kwargs, using=using, key=key, robust=robust)
