"""The class registries, filled by plugins the first time they are used.

A leaf module: the four registries (``trigger_managers``, ``storage_backends``,
``task_runners``, ``trigger_tasks``) live here so that every layer can look
classes up without importing the layers that define them. The plugin system
fills them: it hands this module a :class:`Loader` once (see
:func:`use_loader`), and a registry asks it to load the plugins before the
first lookup that needs them.

Every key remembers its *source*: the plugin whose hook registered it, or the
class's dotted path when it registered itself (a ``TriggerTask`` subclass on
definition). Registrations made inside :func:`recording` are journaled so the
plugin system can undo exactly what one plugin added.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

from class_registry import ClassRegistry

from .exceptions import DuplicateKeyError, UnknownKeyError
from .serialization import dotted_name

if TYPE_CHECKING:  # qualified below, so that the docs link each to its one public home
    from . import manager, runners, storages, task

__all__ = [
    "Change",
    "Loader",
    "Registry",
    "failed_plugins_hint",
    "recording",
    "storage_backends",
    "task_runners",
    "trigger_managers",
    "trigger_tasks",
    "undo",
    "use_loader",
]

T = TypeVar("T")
D = TypeVar("D", bound=Callable[..., Any])

# Per thread: who is registering now, and the journal of what it registered.
_context = threading.local()


class Loader(Protocol):
    """What a registry needs from the plugin system (which registers itself with :func:`use_loader`)."""

    def load(self) -> None:
        """Fill the registries from every plugin, once; later calls return at once."""

    def describe(self, source: str) -> str:
        """A source (a plugin name) as users should read it in messages."""

    def failed(self) -> Mapping[str, str]:
        """Plugins that failed to load, each with why (named when a lookup misses)."""


class _NoPlugins:
    """The loader until the plugin system registers its own: nothing to load."""

    def load(self) -> None:
        pass

    def describe(self, source: str) -> str:
        return source

    def failed(self) -> Mapping[str, str]:
        return {}


_loader: Loader = _NoPlugins()


def use_loader(loader: Loader) -> None:
    """Let every registry fill itself through ``loader`` (the plugin system calls this once)."""
    global _loader
    _loader = loader


def failed_plugins_hint() -> str:
    """``plugins that failed to load: name: why; ...``, or ``""`` when none failed: what an
    error about an unknown key adds, since a missing key is often a plugin that did not load."""
    failed = _loader.failed()
    if not failed:
        return ""
    return "plugins that failed to load: " + "; ".join(
        f"{name}: {why}" for name, why in sorted(failed.items()))


def _same_definition(a: type, b: type) -> bool:
    """A class defined again by the same code (a module reloaded) is not a collision."""
    return a is b or (a.__module__ == b.__module__ and a.__qualname__ == b.__qualname__)


def _describe(source: str, cls: type) -> str:
    name = dotted_name(cls)
    if source == name:
        return source
    return f"{_loader.describe(source)} ({name})"


@dataclass(frozen=True)
class Change:
    """One registration, with what the key held before (``None``: nothing)."""

    registry: Registry[Any]
    key: Hashable
    cls: type
    previous: type | None
    previous_source: str | None


@contextmanager
def recording(source: str) -> Iterator[list[Change]]:
    """Attribute registrations made by this thread in the block to ``source`` and journal them.

    If the block raises, its registrations are undone before the error propagates.
    """
    saved = getattr(_context, "source", None), getattr(_context, "journal", None)
    journal: list[Change] = []
    _context.source, _context.journal = source, journal
    try:
        yield journal
    except BaseException:
        undo(journal)
        raise
    finally:
        _context.source, _context.journal = saved


def undo(changes: Iterable[Change]) -> None:
    """Revert journaled registrations, newest first; a key changed since then is left alone."""
    for change in reversed(list(changes)):
        change.registry._revert(change)


class Registry(ClassRegistry[T]):
    """A :class:`class_registry.ClassRegistry` that

    * loads the plugins (built-ins included) before the first lookup that needs them,
    * refuses two different classes under one key, naming both sources,
    * raises :class:`UnknownKeyError` listing the known keys (and plugins that failed).
    """

    def __init__(self, kind: str, attr_name: str | None = None) -> None:
        super().__init__(attr_name=attr_name, unique=True)
        self.kind = kind
        self._sources: dict[Hashable, str] = {}
        self._lock = threading.RLock()

    def get_class(self, key: Hashable) -> type[T]:
        found = self._registry.get(key)
        if found is not None:
            return found
        _loader.load()
        return super().get_class(key)

    def keys(self) -> Iterable[Hashable]:
        _loader.load()
        return super().keys()

    def __contains__(self, key: Hashable) -> bool:
        if key in self._registry:
            return True
        _loader.load()
        return key in self._registry

    def __missing__(self, key: Hashable) -> type[T]:
        raise UnknownKeyError(self.kind, key, self._registry.keys(), failed_plugins_hint())

    @overload
    def register(self, key: D, /) -> D: ...

    @overload
    def register(self, key: Hashable) -> Callable[[D], D]: ...

    def register(self, key: Any) -> Any:
        """``register("key")(cls)``, or ``register(cls)`` to use the class's key attribute.

        A function decorated with ``@trigger_task`` stands for its task class;
        any other function is refused (class-registry would take it for a key).
        """
        if inspect.isfunction(key) or inspect.ismethod(key):
            task_class = getattr(key, "__trigger_task__", None)
            if not inspect.isclass(task_class):
                raise TypeError(
                    f"cannot register function {key.__qualname__!r} in the {self.kind} registry: "
                    "register a class (a plain function becomes a task with @trigger_task)")
            super().register(task_class)
            return key
        return super().register(key)

    def _register(self, key: Hashable, class_: type[T]) -> None:
        if key in ("", None):
            raise ValueError(f"cannot register {class_!r} under an empty key")
        if not inspect.isclass(class_):
            raise TypeError(f"{self.kind} {key!r} must be a class, not {class_!r}")
        source = getattr(_context, "source", None) or dotted_name(class_)
        with self._lock:
            existing = self._registry.get(key)
            if existing is not None and not _same_definition(existing, class_):
                raise DuplicateKeyError(
                    f"{self.kind} {key!r} is registered twice: by "
                    f"{_describe(self._sources[key], existing)} and by {_describe(source, class_)}; "
                    "remove one of them or register one under another key")
            journal = getattr(_context, "journal", None)
            if journal is not None:
                journal.append(Change(self, key, class_, existing, self._sources.get(key)))
            self._registry[key] = class_
            self._sources[key] = source

    def _unregister(self, key: Hashable) -> type[T]:
        with self._lock:
            self._sources.pop(key, None)
            return super()._unregister(key)

    def _revert(self, change: Change) -> None:
        with self._lock:
            if self._registry.get(change.key) is not change.cls:
                return
            if change.previous is None:
                del self._registry[change.key]
                self._sources.pop(change.key, None)
                self._lookup_keys.pop(change.key, None)
            else:
                self._registry[change.key] = change.previous
                self._sources[change.key] = change.previous_source or dotted_name(change.previous)

    def key_of(self, cls: type) -> Hashable | None:
        """The first key ``cls`` itself (not a parent class) is registered under, else ``None``."""
        _loader.load()
        with self._lock:
            return next((key for key, found in self._registry.items() if found is cls), None)

    def source_of(self, key: Hashable) -> str:
        """Who registered ``key``: a plugin name, or the class's dotted path."""
        self.get_class(key)
        return self._sources[key]

    def sources(self) -> dict[str, str]:
        """Every key (as a string) with who registered it."""
        _loader.load()
        with self._lock:
            return {str(key): source for key, source in self._sources.items()}

    def __repr__(self) -> str:
        return f"<Registry {self.kind}: {', '.join(map(str, self._registry))}>"


trigger_managers: Registry[manager.TriggerManager] = Registry("trigger manager", attr_name="name")
"""Trigger manager classes by key: ``trigger_managers.get("default", storage)``."""

storage_backends: Registry[storages.StorageBackend] = Registry("storage backend", attr_name="name")
"""Storage backend classes by key: ``storage_backends.get("redis", uid)``."""

task_runners: Registry[runners.TaskRunner] = Registry("task runner", attr_name="name")
"""Task runner classes by key (built-in: ``inline``, ``threading``)."""

trigger_tasks: Registry[task.TriggerTask] = Registry("trigger task", attr_name="name")
"""Trigger task classes by ``name``; ``run`` in a configuration names one of them."""
