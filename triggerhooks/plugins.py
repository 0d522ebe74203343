"""The plugin system (pluggy): discovery, registration and the hook marker.

Nothing happens at import time. The plugin manager is built on first use;
the built-in managers, storages and runners register through the very same
hooks as third-party plugins.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, cast

import pluggy

from . import hookspecs
from .exceptions import PluginLoadWarning

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "failed_plugins",
    "get_plugin_manager",
    "hookimpl",
    "list_plugins",
    "load_registrations",
    "register",
    "registered",
    "unregister",
]

ENTRY_POINT_GROUP = "triggerhooks"

hookimpl = pluggy.HookimplMarker("triggerhooks")
"""Marks a function as an implementation of a hook in :mod:`triggerhooks.hookspecs`."""

log = logging.getLogger(__name__)

_lock = threading.RLock()
_manager: pluggy.PluginManager | None = None
_failed: dict[str, str] = {}
_distributions: dict[str, str] = {}
_registered_with: dict[str, set[str]] = {}
_loaded = False
_loading_thread: int | None = None


def _build_manager() -> pluggy.PluginManager:
    from . import builtins

    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    manager.register(builtins, name="triggerhooks.builtins")
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist.name if entry_point.dist else "unknown distribution"
        label = f"{dist} (entry point {entry_point.name!r} = {entry_point.value})"
        if manager.has_plugin(entry_point.name) or manager.is_blocked(entry_point.name):
            continue
        try:
            plugin = entry_point.load()
            manager.register(plugin, name=entry_point.name)
            _distributions[entry_point.name] = dist
        except Exception as exc:  # a broken plugin must not break the others
            _failed[entry_point.name] = f"{label}: {type(exc).__name__}: {exc}"
            log.error("triggerhooks plugin %s failed to load: %s", label, exc, exc_info=True)
            warnings.warn(f"triggerhooks plugin {label} failed to load: {exc}",
                          PluginLoadWarning, stacklevel=3)
    # A misspelled hook name fails loudly instead of being ignored.
    manager.check_pending()
    return manager


def get_plugin_manager() -> pluggy.PluginManager:
    """The process's plugin manager, built (and entry points loaded) on first call."""
    global _manager
    if _manager is None:
        with _lock:
            if _manager is None:
                _manager = _build_manager()
    return _manager


def _registries() -> dict[str, Any]:
    from .manager import trigger_managers
    from .runners import task_runners
    from .storages import storage_backends
    from .task import trigger_tasks

    return {
        "triggerhooks_register_managers": trigger_managers,
        "triggerhooks_register_storages": storage_backends,
        "triggerhooks_register_runners": task_runners,
        "triggerhooks_register_tasks": trigger_tasks,
    }


def _register_plugin(manager: pluggy.PluginManager, plugin: object) -> None:
    """Call the registration hooks of one plugin, recording it as the source."""
    name = manager.get_name(plugin) or repr(plugin)
    for hook_name, registry in _registries().items():
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            if impl.plugin is plugin:
                registry.register_from(name, impl.function)
                _registered_with.setdefault(name, set()).add(registry.kind)


def _is_loaded() -> bool:
    return _loaded


def load_registrations() -> None:
    """Fill the registries from every plugin, once (later calls return at once)."""
    global _loaded, _loading_thread
    if _loaded or _loading_thread == threading.get_ident():
        return  # done, or called again by a hook while this thread loads
    with _lock:
        if _is_loaded():
            return
        _loading_thread = threading.get_ident()
        try:
            manager = get_plugin_manager()
            for plugin in manager.get_plugins():
                _register_plugin(manager, plugin)
            _loaded = True
        finally:
            _loading_thread = None


def register(plugin: object, name: str | None = None) -> str:
    """Register an in-process plugin (a module or object with hook implementations).

    Its registration hooks run at once if the registries are already loaded.
    Returns the plugin's name.
    """
    manager = get_plugin_manager()
    with _lock:
        plugin_name = manager.register(plugin, name=name)
        if plugin_name is None:
            raise ValueError(f"plugin {name or plugin!r} is blocked")
        manager.check_pending()
        if _loaded:
            try:
                _register_plugin(manager, plugin)
            except Exception:
                manager.unregister(plugin)
                raise
    return plugin_name


def unregister(plugin: object) -> None:
    """Remove a plugin registered with :func:`register` and the classes it registered."""
    manager = get_plugin_manager()
    with _lock:
        name = manager.get_name(plugin)
        manager.unregister(plugin)
        if name is None:
            return
        for registry in _registries().values():
            for key, source in list(registry._sources.items()):
                if source == name:
                    registry.unregister(key)
        _registered_with.pop(name, None)


@contextmanager
def registered(plugin: object, name: str | None = None) -> Iterator[str]:
    """Register a plugin for the duration of a ``with`` block (handy in tests)."""
    plugin_name = register(plugin, name)
    try:
        yield plugin_name
    finally:
        unregister(plugin)


def failed_plugins() -> dict[str, str]:
    """Entry points that failed to load, with why."""
    return dict(_failed)


@dataclass
class PluginInfo:
    """One loaded plugin and what it contributed."""

    name: str
    module: str
    distribution: str | None
    registered: dict[str, list[str]] = field(default_factory=dict)
    receiver_modules: list[str] = field(default_factory=list)


def list_plugins() -> tuple[list[PluginInfo], dict[str, str]]:
    """Every loaded plugin with the keys it registered, and the plugins that failed."""
    load_registrations()
    manager = get_plugin_manager()
    infos: list[PluginInfo] = []
    for plugin in manager.get_plugins():
        name = manager.get_name(plugin) or repr(plugin)
        module = plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__module__
        info = PluginInfo(name, module, _distributions.get(name))
        for registry in _registries().values():
            keys = sorted(str(k) for k, source in registry._sources.items() if source == name)
            if keys:
                info.registered[registry.kind] = keys
        for impl in manager.hook.triggerhooks_receiver_modules.get_hookimpls():
            if impl.plugin is plugin:
                info.receiver_modules.extend(cast("list[str]", impl.function()))
        infos.append(info)
    return infos, failed_plugins()


def receiver_modules_from_plugins() -> list[str]:
    """Receiver modules every plugin asks for, in plugin order."""
    modules: list[str] = []
    for names in get_plugin_manager().hook.triggerhooks_receiver_modules():
        modules.extend(names)
    return modules

