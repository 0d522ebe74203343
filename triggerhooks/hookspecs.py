"""Hook specifications: every way a plugin can extend triggerhooks.

A plugin is a module (or object) with functions decorated by
:data:`triggerhooks.plugins.hookimpl` and named like the specifications below.
Installed packages declare it under the ``triggerhooks`` entry-point group;
applications and tests can call :func:`triggerhooks.plugins.register`.
Implementations may accept only the arguments they need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .registry import Registry

__all__ = ["hookspec"]

hookspec = pluggy.HookspecMarker("triggerhooks")


@hookspec
def triggerhooks_register_managers(registry: Registry[Any]) -> None:
    """Register trigger manager classes: ``registry.register("key")(ManagerClass)``.

    Called once, the first time any registry is used. A key registered twice
    by different classes raises :class:`~triggerhooks.exceptions.DuplicateKeyError`.
    """


@hookspec
def triggerhooks_register_storages(registry: Registry[Any]) -> None:
    """Register storage backend classes (subclasses of ``StorageBackend``).

    Called once, the first time any registry is used. Set the class's
    ``url_schemes`` to let ``open_storage("scheme://...")`` pick it.
    """


@hookspec
def triggerhooks_register_runners(registry: Registry[Any]) -> None:
    """Register task runner classes (subclasses of ``TaskRunner``).

    Called once, the first time any registry is used. A task selects a runner
    with its ``using`` directive.
    """


@hookspec
def triggerhooks_register_tasks(registry: Registry[Any]) -> None:
    """Register trigger task classes (subclasses of ``TriggerTask``) by their ``name``.

    Called once, the first time any registry is used. Importing a module
    that defines ``TriggerTask`` subclasses registers them too; this hook
    makes a plugin's tasks known without that import.
    """


@hookspec
def triggerhooks_receiver_modules() -> list[str]:  # type: ignore[empty-body]
    """Return dotted names of modules that define signal receivers.

    Called once, when the first trigger manager is created; the modules are
    imported then, with those named by ``TRIGGERHOOKS_RECEIVER_MODULES``.
    """
