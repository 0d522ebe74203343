"""Loading plugins (pluggy): discovery, registration, failure isolation.

Nothing is loaded at import time: :func:`connect` (called once, when
``triggerhooks`` is imported) only tells the registries and the receiver-module
loader whom to ask. The first time one of them, or this module's API, needs
plugins, the plugin manager is built once (under a lock, so concurrent first
uses wait for one load): the built-ins and every installed entry point of the
``triggerhooks`` group are registered, then each plugin's registration hooks
fill the registries, recording the plugin as the source of every key it adds.
An installed plugin that fails is recorded (:func:`failed_plugins`), reported
once (a :class:`~triggerhooks.exceptions.PluginLoadWarning`; its traceback is
logged at DEBUG) and left out; the others still load.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import class_registry
import pluggy

from ..events import modules as receiver_modules
from ..exceptions import DuplicateKeyError, InvalidPluginError, PluginLoadWarning
from ..registries import (
    Change,
    Registry,
    recording,
    storage_backends,
    task_runners,
    trigger_managers,
    trigger_tasks,
    undo,
    use_loader,
)
from . import builtins, hookspecs
from .hookspecs import ENTRY_POINT_GROUP

__all__ = [
    "BUILTINS",
    "PluginInfo",
    "connect",
    "describe_source",
    "failed_plugins",
    "get_plugin_manager",
    "list_plugins",
    "load_registrations",
    "receiver_modules_from_plugins",
    "register",
    "registered",
    "unregister",
]

BUILTINS = "triggerhooks.builtins"
"""Plugin name of the built-in managers, storages and runners (:mod:`triggerhooks.plugins.builtins`)."""

HOOK_PREFIX = "triggerhooks_"

# The name users configure and read in the docs: the plugin system's public module.
log = logging.getLogger("triggerhooks.plugins")

# Warnings are attributed to the first caller outside these (triggerhooks and class-registry).
_INTERNAL_DIRS = (os.path.dirname(os.path.dirname(__file__)) + os.sep,
                  os.path.dirname(class_registry.__file__ or "") + os.sep)

_REGISTRIES: dict[str, Registry[Any]] = {
    "triggerhooks_register_managers": trigger_managers,
    "triggerhooks_register_storages": storage_backends,
    "triggerhooks_register_runners": task_runners,
    "triggerhooks_register_tasks": trigger_tasks,
}
"""Each registration hook and the registry it fills."""


@dataclass(frozen=True)
class _Origin:
    """Where an installed plugin comes from."""

    distribution: str
    version: str
    entry_point: str

    def __str__(self) -> str:
        return f"{self.distribution} {self.version} (entry point {self.entry_point})"


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.manager: pluggy.PluginManager | None = None  # set as soon as it exists
        self.ready: pluggy.PluginManager | None = None  # set once entry points are loaded
        self.loaded = False  # every registered plugin's registrations applied
        self.syncing = False
        self.applied: dict[str, list[Change]] = {}
        self.origins: dict[str, _Origin] = {}
        self.failed: dict[str, str] = {}
        self.warnings: list[str] = []


_state = _State()


def describe_source(name: str) -> str:
    """A plugin name as users should read it in messages (with its distribution)."""
    if name == BUILTINS:
        return f"the built-ins ({BUILTINS})"
    origin = _state.origins.get(name)
    if origin is not None:
        return f"plugin {name!r} from {origin.distribution} {origin.version}"
    manager = _state.manager
    if manager is not None and manager.has_plugin(name):
        return f"plugin {name!r}"
    return name


# -- building the plugin manager ---------------------------------------------------------


def _call(impl: pluggy.HookImpl, **kwargs: Any) -> Any:
    """Call one implementation with the arguments it asks for, as pluggy would."""
    return impl.function(*[kwargs[name] for name in impl.argnames])


def _hook_problems(manager: pluggy.PluginManager, plugin: object) -> list[str]:
    """What pluggy lets through but would leave a plugin silently doing nothing."""
    known = [name for name in vars(manager.hook) if not name.startswith("_")
             and getattr(manager.hook, name).has_spec()]
    problems: list[str] = []
    implemented: set[str] = set()
    for caller in manager.get_hookcallers(plugin) or ():
        implemented.add(caller.name)
        if caller.has_spec():
            continue
        impls = [impl for impl in caller.get_hookimpls() if impl.plugin is plugin]
        if all(impl.optionalhook for impl in impls):
            continue
        # Compare without the shared prefix, which would make every name look close.
        close = difflib.get_close_matches(caller.name.removeprefix(HOOK_PREFIX),
                                          [name.removeprefix(HOOK_PREFIX) for name in known], n=1)
        hint = (f" (did you mean {HOOK_PREFIX + close[0]!r}?)" if close
                else f" (known hooks: {', '.join(known)})")
        problems.append(f"unknown hook {caller.name!r}{hint}")
    for attr in dir(plugin):
        if not attr.startswith(HOOK_PREFIX) or attr in implemented:
            continue
        value = inspect.getattr_static(plugin, attr, None)
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if inspect.isfunction(value) and manager.parse_hookimpl_opts(plugin, attr) is None:
            problems.append(f"function {attr!r} is not marked with @hookimpl "
                            "(from triggerhooks.plugins import hookimpl)")
    return problems


def _add(manager: pluggy.PluginManager, plugin: object, name: str | None) -> str:
    """Register ``plugin`` with pluggy after checking it fits the specifications."""
    known = name is not None and (name == BUILTINS or name in _state.origins)
    label = describe_source(name) if known and name else f"plugin {name or plugin!r}"
    try:
        plugin_name = manager.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        if manager.is_registered(plugin):  # older pluggy registers before validating
            manager.unregister(plugin)
        raise InvalidPluginError(plugin, f"{label}: {exc}") from exc
    if plugin_name is None:
        raise ValueError(f"{label} is blocked and cannot be registered")
    problems = _hook_problems(manager, plugin)
    if problems:
        label = describe_source(plugin_name)
        manager.unregister(plugin)
        raise InvalidPluginError(plugin, f"{label}: " + "; ".join(problems))
    return plugin_name


def _fail(name: str, origin: _Origin, exc: BaseException) -> None:
    """Record an installed plugin that is left out, for lookups and listings, and report it
    once: a :class:`PluginLoadWarning`. Its traceback is logged at DEBUG, for whoever
    needs to know where it broke (the command line shows it with ``--traceback``)."""
    why = f"{origin}: {type(exc).__name__}: {exc}"
    key = name if name not in _state.failed else f"{name} ({origin.distribution})"
    _state.failed[key] = why
    log.debug("triggerhooks plugin %r failed to load (reported by a PluginLoadWarning)", name,
              exc_info=exc)
    _state.warnings.append(f"triggerhooks plugin {name!r} failed to load and is ignored: {why}")


def _flush_warnings() -> None:
    """Emit queued warnings outside the lock, once state is consistent (``-W error`` may raise)."""
    with _state.lock:
        pending, _state.warnings = _state.warnings, []
    if not pending:
        return
    # Attribute the warning to the first caller outside triggerhooks and class-registry.
    level, frame = 1, sys._getframe()
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_INTERNAL_DIRS):
        level, frame = level + 1, frame.f_back
    for message in pending:
        warnings.warn(message, PluginLoadWarning, stacklevel=level)


def _load_entry_points(manager: pluggy.PluginManager) -> None:
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist
        origin = _Origin(dist.name if dist else "unknown distribution",
                         dist.version if dist else "?",
                         f"{entry_point.name} = {entry_point.value}")
        name = entry_point.name
        if manager.is_blocked(name):
            continue
        if manager.has_plugin(name):
            _fail(name, origin, ValueError(
                f"the plugin name {name!r} is already taken by {describe_source(name)}"))
            continue
        try:
            plugin = entry_point.load()
            _state.origins[name] = origin
            _add(manager, plugin, name)
        except Exception as exc:  # a broken plugin must not break the others
            _state.origins.pop(name, None)
            _fail(name, origin, exc)


def get_plugin_manager() -> pluggy.PluginManager:
    """The process's pluggy manager; the first call registers the built-ins and entry points."""
    manager = _state.ready
    if manager is not None:
        return manager
    with _state.lock:
        manager = _state.manager
        if manager is None:
            manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
            manager.add_hookspecs(hookspecs)
            _add(manager, builtins, BUILTINS)
            # Visible to this thread at once (a plugin imported below may use a
            # registry); other threads wait on the lock until loading is done.
            _state.manager = manager
            try:
                _load_entry_points(manager)
            except BaseException:
                _state.manager = None
                raise
            _state.ready = manager
            if _state.loaded:  # a plugin's import used a registry: apply the rest now
                _sync(manager)
    _flush_warnings()
    return manager


# -- filling the registries ----------------------------------------------------------------


def _apply(manager: pluggy.PluginManager, name: str, plugin: object) -> list[Change]:
    """Run one plugin's registration hooks; all or nothing."""
    changes: list[Change] = []
    try:
        for hook_name, registry in _REGISTRIES.items():
            for impl in getattr(manager.hook, hook_name).get_hookimpls():
                if impl.plugin is plugin:
                    with recording(name) as journal:
                        _call(impl, registry=registry)
                    changes.extend(journal)
    except BaseException:
        undo(changes)
        raise
    return changes


def _sync(manager: pluggy.PluginManager) -> None:
    """Apply every registered plugin not applied yet, in registration order.

    An installed plugin whose hook raises is left out like one that fails to
    import. A key collision, or a failing built-in or in-process plugin, undoes
    what this call applied and raises.
    """
    done: list[str] = []
    try:
        while True:
            pending = [(name, plugin) for name, plugin in manager.list_name_plugin()
                       if plugin is not None and name not in _state.applied]
            if not pending:
                return
            for name, plugin in pending:
                try:
                    changes = _apply(manager, name, plugin)
                except DuplicateKeyError:
                    raise
                except Exception as exc:
                    origin = _state.origins.pop(name, None)
                    if origin is None:
                        raise
                    manager.unregister(plugin)
                    _fail(name, origin, exc)
                    continue
                _state.applied[name] = changes
                done.append(name)
    except BaseException:
        for name in reversed(done):
            undo(_state.applied.pop(name))
        raise


def load_registrations() -> None:
    """Fill the registries from every plugin, once; later calls return at once.

    Called by the registries before the first lookup that needs it. Raises
    :class:`~triggerhooks.exceptions.DuplicateKeyError` while two plugins
    claim one key (nothing from that load stays registered).
    """
    if _state.loaded:
        return
    manager = get_plugin_manager()
    with _state.lock:
        if not (_state.loaded or _state.syncing):  # syncing: a hook looked something up
            _state.syncing = True
            try:
                _sync(manager)
                _state.loaded = True
            finally:
                _state.syncing = False
    _flush_warnings()


def _receiver_modules_of(manager: pluggy.PluginManager, name: str, plugin: object) -> list[str]:
    modules: list[str] = []
    for impl in manager.hook.triggerhooks_receiver_modules.get_hookimpls():
        if impl.plugin is not plugin:
            continue
        value = _call(impl)
        if value is None:
            continue
        if not isinstance(value, (list, tuple)) or not all(isinstance(each, str) for each in value):
            raise InvalidPluginError(
                plugin, f"triggerhooks_receiver_modules of {describe_source(name)} must return a "
                f"list of module names, not {value!r}")
        modules.extend(value)
    return modules


def receiver_modules_from_plugins() -> list[str]:
    """Receiver modules every plugin asks for, in plugin order (the receiver-module loader asks)."""
    load_registrations()
    manager = get_plugin_manager()
    modules: list[str] = []
    for name, plugin in manager.list_name_plugin():
        if plugin is not None:
            modules.extend(_receiver_modules_of(manager, name, plugin))
    return modules


# -- in-process plugins ----------------------------------------------------------------------


def register(plugin: object, name: str | None = None) -> str:
    """Register an in-process plugin (a module or object with hook implementations).

    Its registration hooks run and its receiver modules are imported at once;
    if anything fails (an unknown hook, a duplicate key, a module that cannot
    be imported) nothing of it stays registered and the error is raised.
    Returns the plugin's name (``name``, else pluggy's canonical name).
    """

    def withdraw() -> None:
        with _state.lock:
            undo(_state.applied.pop(plugin_name, []))
            if manager.is_registered(plugin):
                manager.unregister(plugin)

    load_registrations()
    manager = get_plugin_manager()
    with _state.lock:
        plugin_name = _add(manager, plugin, name)
        try:
            if _state.loaded:  # else this runs inside the first load, which applies it
                _state.applied[plugin_name] = _apply(manager, plugin_name, plugin)
            modules = _receiver_modules_of(manager, plugin_name, plugin)
        except BaseException:
            withdraw()
            raise
    if modules:
        # Outside our lock: the events module takes its own lock, then ours.
        try:
            receiver_modules.load_receiver_modules(modules)
        except BaseException:
            withdraw()
            raise
    return plugin_name


def unregister(plugin: object) -> None:
    """Remove a plugin (the object or its name) and everything its hooks registered.

    Receivers its modules connected stay connected: importing is not undone.
    """
    manager = get_plugin_manager()
    with _state.lock:
        if isinstance(plugin, str):
            name: str | None = plugin
            target = manager.get_plugin(plugin)
        else:
            name, target = manager.get_name(plugin), plugin
        if target is None or name is None:
            raise ValueError(f"{plugin!r} is not a registered triggerhooks plugin")
        manager.unregister(target)
        undo(_state.applied.pop(name, []))
        _state.origins.pop(name, None)


@contextmanager
def registered(plugin: object, name: str | None = None) -> Iterator[str]:
    """Register a plugin for the duration of a ``with`` block (handy in tests); yields its name."""
    plugin_name = register(plugin, name)
    try:
        yield plugin_name
    finally:
        if get_plugin_manager().has_plugin(plugin_name):
            unregister(plugin_name)


# -- what is installed -----------------------------------------------------------------------


def failed_plugins() -> dict[str, str]:
    """Installed plugins that were left out, each with its distribution, entry point and error."""
    load_registrations()
    with _state.lock:
        return dict(_state.failed)


@dataclass
class PluginInfo:
    """One loaded plugin and what it contributed."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    entry_point: str | None = None
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    """Registry kind (``"storage backend"``, ...) -> the keys this plugin registered."""
    receiver_modules: list[str] = field(default_factory=list)


def list_plugins() -> tuple[list[PluginInfo], dict[str, str]]:
    """Every loaded plugin (built-ins first) with what it registered, and the failed ones."""
    load_registrations()
    manager = get_plugin_manager()
    sources = [(registry.kind, registry.sources()) for registry in _REGISTRIES.values()]
    infos: list[PluginInfo] = []
    for name, plugin in manager.list_name_plugin():
        if plugin is None:
            continue
        module = plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__module__
        origin = _state.origins.get(name)
        info = PluginInfo(
            name, module,
            distribution=origin.distribution if origin else None,
            version=origin.version if origin else None,
            entry_point=origin.entry_point if origin else None,
            hooks=sorted(caller.name for caller in manager.get_hookcallers(plugin) or ()),
            receiver_modules=_receiver_modules_of(manager, name, plugin),
        )
        for kind, by_key in sources:
            keys = sorted(key for key, source in by_key.items() if source == name)
            if keys:
                info.registered[kind] = keys
        infos.append(info)
    return infos, failed_plugins()


# -- wiring ------------------------------------------------------------------------------------


class _Loader:
    """The plugin system as the registries see it (:class:`~triggerhooks.registries.Loader`)."""

    def load(self) -> None:
        load_registrations()

    def describe(self, source: str) -> str:
        return describe_source(source)

    def failed(self) -> dict[str, str]:
        return failed_plugins()


def connect() -> None:
    """Make the registries fill themselves from the plugins, and the receiver-module loader
    import the plugins' receiver modules. ``triggerhooks/__init__.py`` calls this once."""
    use_loader(_Loader())
    receiver_modules.use_plugin_modules(receiver_modules_from_plugins)
