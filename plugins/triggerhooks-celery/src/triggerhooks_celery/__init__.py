"""Run triggerhooks on Celery: the ``celery`` task runner and the worker side.

``TriggerManager(storage, task_runner="celery")`` sends every scheduled
instance to the Celery workers; ``celery -A triggerhooks_celery worker`` (or
your own app after :func:`install`) runs them. See ``docs/celery.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .runner import BrokerUnavailableError, CeleryTaskRunner, EagerModeError

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["BrokerUnavailableError", "CeleryTaskRunner", "EagerModeError", "app", "create_app",
           "get_app", "install", "sweep"]


def install(app: Celery) -> Celery:
    """Register triggerhooks' Celery tasks on ``app`` and send to it (see :mod:`.apps`)."""
    from .apps import install as install_on

    return install_on(app)


def create_app(main: str = "triggerhooks", **settings: Any) -> Celery:
    """A Celery app with triggerhooks' defaults and tasks (see :func:`.apps.create_app`)."""
    from .apps import create_app as create

    return create(main, **settings)


def sweep(urls: list[str] | None = None) -> dict[str, list[Any]]:
    """Run one sweep now (what every worker's sweeper does periodically): recover each
    session with open work in ``urls`` (default: the app's ``trigger_sweep_storages``,
    else ``$TRIGGERHOOKS_STORAGE_URL``). Returns what was done, by session."""
    from .apps import sweep_now

    return sweep_now(get_app(), urls)


def get_app() -> Celery:
    """The app the ``celery`` runner sends to."""
    from .apps import get_app as get

    return get()


def __getattr__(name: str) -> Any:
    # ``app`` is built on first access, so that loading the plugin imports no Celery,
    # while ``celery -A triggerhooks_celery worker`` still finds it.
    if name == "app":
        return get_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
