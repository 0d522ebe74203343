"""The Celery app triggerhooks sends to, and the two Celery tasks it registers on it.

Use your own app (``install(app)``) or the default one (``get_app()``, also
``triggerhooks_celery.app`` for ``celery -A triggerhooks_celery worker``),
configured by Celery's own variables (``CELERY_BROKER_URL``,
``CELERY_RESULT_BACKEND``) and by the module named in
``$TRIGGERHOOKS_CELERY_CONFIG``.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from typing import Any

from celery import Celery
from celery.app import defaults as celery_defaults
from celery.signals import worker_ready, worker_shutdown

from triggerhooks import StorageUnavailableError
from triggerhooks.ext import Recovery

from . import worker
from .settings import (
    CONFIG_ENV,
    DEFAULT_CLAIM_GRACE,
    DEFAULT_LEASE,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_SWEEP_INTERVAL,
    EXECUTE_TASK,
    RECEIVER_TASK,
)
from .sweeper import Sweeper, sweep, sweep_storages

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

log = logging.getLogger(__name__)

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
    worker_ready.connect(_start_sweeper, weak=False, dispatch_uid="triggerhooks-sweeper-start")
    worker_shutdown.connect(_stop_sweeper, weak=False, dispatch_uid="triggerhooks-sweeper-stop")
    return app


_sweepers: list[Sweeper] = []


def _sweep_settings(conf: Any) -> tuple[float, str, float]:
    """The app's interval, manager key and claim grace for sweeps."""
    return (float(conf.get("trigger_sweep_interval") or DEFAULT_SWEEP_INTERVAL),
            str(conf.get("trigger_sweep_manager") or "default"),
            float(conf.get("trigger_claim_grace") or DEFAULT_CLAIM_GRACE))


def sweep_now(app: Celery, urls: list[str] | None = None) -> dict[str, list[Recovery]]:
    """One sweep with ``app``'s settings over ``urls`` (default: the app's storages)."""
    _, manager, grace = _sweep_settings(app.conf)
    return sweep(sweep_storages(app.conf) if urls is None else urls, manager=manager,
                 claim_grace=grace)


def _start_sweeper(sender: Any = None, **kwargs: Any) -> None:
    """A worker is ready: start its sweeper (see :mod:`.sweeper`), unless its app has no
    triggerhooks tasks, ``trigger_sweep`` is false, or no storage is configured."""
    app = getattr(sender, "app", None)
    if app is None or EXECUTE_TASK not in app.tasks or not app.conf.get("trigger_sweep", True):
        return
    urls = sweep_storages(app.conf)
    if not urls:
        log.warning("triggerhooks sweeper: no storage to sweep (set trigger_sweep_storages or "
                    "$TRIGGERHOOKS_STORAGE_URL); stuck instances wait for a recovery")
        return
    _sweepers.append(Sweeper(urls, *_sweep_settings(app.conf)).start())


def _stop_sweeper(**kwargs: Any) -> None:
    while _sweepers:
        _sweepers.pop().stop()


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
