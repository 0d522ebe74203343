"""Hook specifications: every way a plugin can extend triggerhooks.

A plugin is a module (or any object) with functions decorated with
``triggerhooks.plugins.hookimpl`` and named like the specifications below.
Installed packages declare it under the ``triggerhooks`` entry-point group;
applications and tests register one with ``triggerhooks.plugins.register()``.
An implementation may leave out arguments it does not need.

The docs page ``docs/plugins.md`` carries a reference generated from these
docstrings; a test fails when the two disagree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ..manager import TriggerManager
    from ..registries import Registry
    from ..runners import TaskRunner
    from ..storages import StorageBackend
    from ..task import TriggerTask

__all__ = ["ENTRY_POINT_GROUP", "hookimpl", "hookspec"]

ENTRY_POINT_GROUP = "triggerhooks"
"""The entry-point group installed plugins declare (``[project.entry-points.triggerhooks]``)."""

hookspec = pluggy.HookspecMarker(ENTRY_POINT_GROUP)
"""Marks a function below as a hook specification."""

hookimpl = pluggy.HookimplMarker(ENTRY_POINT_GROUP)
"""Marks a function as an implementation of a hook in :mod:`triggerhooks.plugins.hookspecs`."""


@hookspec
def triggerhooks_register_managers(registry: Registry[TriggerManager]) -> None:
    """Add trigger manager classes (subclasses of ``TriggerManager``) to ``registry``.

    Called once per plugin, the first time any registry is used (for a plugin
    registered in-process later, when it is registered). Register with
    ``registry.register("key")(ManagerClass)``; return nothing. Users pick a
    manager with ``trigger_managers.get("key", storage)``. A key that another
    plugin registered too raises ``DuplicateKeyError`` naming both plugins.
    """


@hookspec
def triggerhooks_register_storages(registry: Registry[StorageBackend]) -> None:
    """Add storage backend classes (subclasses of ``StorageBackend``) to ``registry``.

    Called once per plugin, like ``triggerhooks_register_managers``. Register
    with ``registry.register("key")(StorageClass)``; return nothing. Users pick
    a backend with ``storage_backends.get("key", uid)``; give the class
    ``url_schemes`` to let ``open_storage("scheme://...", uid)`` find it too.
    """


@hookspec
def triggerhooks_register_runners(registry: Registry[TaskRunner]) -> None:
    """Add task runner classes (subclasses of ``TaskRunner``) to ``registry``.

    Called once per plugin, like ``triggerhooks_register_managers``. Register
    with ``registry.register("key")(RunnerClass)``; return nothing. A task
    selects a runner with its ``using`` directive, a manager with
    ``task_runner=`` or ``default_task_runner_name``.
    """


@hookspec
def triggerhooks_register_tasks(registry: Registry[TriggerTask]) -> None:
    """Add trigger task classes (subclasses of ``TriggerTask``) to ``registry``.

    Called once per plugin, like ``triggerhooks_register_managers``. Register
    with ``registry.register(TaskClass)`` (the key is the class's ``name``);
    a function decorated with ``@trigger_task`` can be passed too. Return
    nothing. A ``TriggerTask`` subclass registers itself when its module is
    imported; this hook makes the plugin's tasks known without that import
    and records the plugin as their source.
    """


@hookspec
def triggerhooks_receiver_modules() -> list[str]:  # type: ignore[empty-body]
    """Return the dotted names of modules that connect signal receivers (``@on``).

    Called when the first trigger manager is created (for a plugin registered
    in-process later, when it is registered). The modules are imported then,
    after those named by ``TRIGGERHOOKS_RECEIVER_MODULES``, so the receivers
    are connected without the application importing anything. Return a list
    of strings (an empty list or ``None`` for none).
    """
