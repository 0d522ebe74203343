"""The Celery app triggerhooks sends to, and the two Celery tasks it registers on it.

Use your own app (``install(app)``) or the default one (``get_app()``, also
``triggerhooks_celery.app`` for ``celery -A triggerhooks_celery worker``),
configured by Celery's own variables (``CELERY_BROKER_URL``,
``CELERY_RESULT_BACKEND``) and by the module named in
``$TRIGGERHOOKS_CELERY_CONFIG``.
"""

from __future__ import annotations

import importlib
import os
import threading
from typing import Any

from celery import Celery
from celery.app import defaults as celery_defaults

from triggerhooks import StorageUnavailableError

from . import worker
from .settings import CONFIG_ENV, DEFAULT_LEASE, DEFAULT_MAX_ATTEMPTS, EXECUTE_TASK, RECEIVER_TASK

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_LEASE",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_SETTINGS",
    "EXECUTE_TASK",
    "RECEIVER_TASK",
    "create_app",
    "get_app",
    "install",
]

DEFAULT_SETTINGS: dict[str, Any] = {
    "broker_url": "redis://127.0.0.1:6379/0",  # $CELERY_BROKER_URL wins
    "task_serializer": "json",
    "result_serializer": "json",
    "accept_content": ["json"],
    "result_accept_content": ["json"],
    "worker_prefetch_multiplier": 1,  # with acks_late: a worker holds one message at a time
    "broker_connection_retry_on_startup": True,
}
"""Defaults of the apps :func:`create_app` makes (its configuration module, its keyword
settings and Celery's environment variables override them, in that order)."""

_installed: Celery | None = None
_lock = threading.RLock()


def install(app: Celery) -> Celery:
    """Register triggerhooks' Celery tasks on ``app`` and make it the app the runner sends to.

    Call it where the app is defined, so that the app servers (which send)
    and the workers (``celery -A yourproject worker``) both have it.
    """
    global _installed
    for name, function in ((EXECUTE_TASK, worker.execute_instance),
                           (RECEIVER_TASK, worker.run_receiver)):
        app.task(
            name=name, bind=True,
            acks_late=True,  # a message is acknowledged when its work is done ...
            reject_on_worker_lost=True,  # ... and requeued if its worker process dies meanwhile
            ignore_result=True,  # the outcome lives in the session, not in the result backend
            serializer="json",
            max_retries=None,  # re-checks of a claimed instance go on while it runs
            # The session's storage is down: try again later rather than drop the message.
            autoretry_for=(StorageUnavailableError,), retry_backoff=1, retry_backoff_max=60,
        )(function)
    with _lock:
        _installed = app
    return app


def create_app(main: str = "triggerhooks", **settings: Any) -> Celery:
    """A Celery app configured, from the weakest to the strongest, by
    :data:`DEFAULT_SETTINGS`, the module named in ``$TRIGGERHOOKS_CELERY_CONFIG``,
    ``settings``, and the environment variables Celery reads itself
    (``CELERY_BROKER_URL``, ``CELERY_RESULT_BACKEND``); installed (see :func:`install`)."""
    app = Celery(main)
    layered = dict(DEFAULT_SETTINGS)
    module = os.environ.get(CONFIG_ENV)
    if module:
        app.config_from_object(module)
        for key in _module_settings(module):
            layered.pop(key, None)  # the module says otherwise
    layered.update(settings)
    app.conf.update(layered)
    return install(app)


def _module_settings(module: str) -> set[str]:
    """The (new-style) names of the settings a configuration module sets."""
    names = {name for name in vars(importlib.import_module(module)) if not name.startswith("_")}
    renamed = getattr(celery_defaults, "_TO_NEW_KEY", {})
    return {renamed.get(name, name.lower()) for name in names}


def get_app() -> Celery:
    """The installed app, or the default one (created on first use)."""
    app = _installed
    if app is None:
        with _lock:
            app = _installed or create_app()
    return app
