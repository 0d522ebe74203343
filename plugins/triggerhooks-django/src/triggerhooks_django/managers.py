"""Managers and storages built from ``settings.TRIGGERHOOKS``: the one place that does it.

The original framework's cookbook wrote ``get_trigger_manager(uid)`` by hand in
every project; :func:`get_manager` is that function, reading the settings
each time it is called.
"""

from __future__ import annotations

from triggerhooks import StorageBackend, TriggerManager, open_storage, trigger_managers

from .databases import check_postgres_storage, database_url
from .settings import TriggerhooksSettings, get_settings

__all__ = ["get_manager", "open_session_storage", "storage_url"]


def storage_url(config: TriggerhooksSettings | None = None) -> str | None:
    """The storage URL the settings name: the ``storage`` URL, the URL of the database
    alias, or ``None`` for the core's default. It may hold a password: never show it
    (``triggerhooks.ext.redact_url`` hides it)."""
    config = config or get_settings()
    if config.database is None:
        return config.storage
    url = database_url(config.database, config.database_options)
    check_postgres_storage(config.database)
    return url


def open_session_storage(session: str) -> StorageBackend:
    """The storage of ``session`` where the settings keep sessions."""
    return open_storage(storage_url(), session)


def get_manager(session: str) -> TriggerManager:
    """A manager on ``session`` as the settings say: its storage, the manager class
    registered as ``manager``, the default ``task_runner`` and ``finalize_log_level``."""
    config = get_settings()
    storage = open_storage(storage_url(config), session)
    return trigger_managers.get(config.manager, storage, task_runner=config.task_runner,
                                finalize_log_level=config.finalize_log_level)
