"""The Django app: checks ``TRIGGERHOOKS`` and loads tasks and receivers when Django starts."""

from __future__ import annotations

from django.apps import AppConfig, apps
from django.core.exceptions import ImproperlyConfigured

from triggerhooks import storage_backends, task_runners, trigger_managers

from .loading import import_app_modules, import_modules
from .managers import storage_url
from .settings import SETTING, TriggerhooksSettings, get_settings

__all__ = ["TriggerhooksConfig", "check_names"]


def check_names(config: TriggerhooksSettings) -> None:
    """Raise ``ImproperlyConfigured`` when the storage URL's scheme, the manager or the
    runner the settings name is not registered (checked once the apps' modules, which
    may register them, are loaded)."""
    if config.storage is not None:
        scheme = config.storage.partition("://")[0].lower()
        schemes = {s for key in storage_backends
                   for s in storage_backends.get_class(key).url_schemes}
        if scheme not in schemes:
            raise ImproperlyConfigured(
                f"{SETTING}['storage'] is a {scheme}:// URL, which no installed storage opens "
                f"(known: {', '.join(sorted(schemes))})")
    if config.manager not in trigger_managers:
        known = ", ".join(sorted(map(str, trigger_managers.keys())))
        raise ImproperlyConfigured(f"{SETTING}['manager'] is {config.manager!r}, which is not a "
                                   f"registered trigger manager (known: {known})")
    if config.task_runner is not None and config.task_runner not in task_runners:
        known = ", ".join(sorted(map(str, task_runners.keys())))
        raise ImproperlyConfigured(f"{SETTING}['task_runner'] is {config.task_runner!r}, which "
                                   f"is not a registered task runner (known: {known})")


class TriggerhooksConfig(AppConfig):
    """``triggerhooks_django`` in ``INSTALLED_APPS``."""

    name = "triggerhooks_django"
    label = "triggerhooks_django"
    verbose_name = "triggerhooks"

    def ready(self) -> None:
        """Check the settings, import every app's ``triggers``/``receivers`` module and the
        configured receiver modules, then check the names the settings use."""
        config = get_settings()
        storage_url(config)  # an unknown database alias or a missing storage fails now
        import_app_modules(apps.get_app_configs(), config.autodiscover)
        import_modules(config.receiver_modules)
        check_names(config)
