"""Class registries that fill themselves from plugins the first time they are used.

Every key remembers its *source*: the plugin whose hook registered it, or the
class's dotted path when it registered itself (a ``TriggerTask`` subclass on
definition). Registrations made inside :func:`recording` are journaled so the
plugin system can undo exactly what one plugin added.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from class_registry import ClassRegistry

from .exceptions import DuplicateKeyError, UnknownKeyError

__all__ = ["Change", "Registry", "recording", "undo"]

T = TypeVar("T")
D = TypeVar("D", bound=Callable[..., Any])

# Per thread: who is registering now, and the journal of what it registered.
_context = threading.local()


def _dotted(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _same_definition(a: type, b: type) -> bool:
    """A class defined again by the same code (a module reloaded) is not a collision."""
    return a is b or (a.__module__ == b.__module__ and a.__qualname__ == b.__qualname__)


def _describe(source: str, cls: type) -> str:
    from .plugins import describe_source

    if source == _dotted(cls):
        return source
    return f"{describe_source(source)} ({_dotted(cls)})"


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

    @staticmethod
    def _ensure_plugins() -> None:
        from .plugins import load_registrations

        load_registrations()

    def get_class(self, key: Hashable) -> type[T]:
        found = self._registry.get(key)
        if found is not None:
            return found
        self._ensure_plugins()
        return super().get_class(key)

    def keys(self) -> Iterable[Hashable]:
        self._ensure_plugins()
        return super().keys()

    def __contains__(self, key: Hashable) -> bool:
        if key in self._registry:
            return True
        self._ensure_plugins()
        return key in self._registry

    def __missing__(self, key: Hashable) -> type[T]:
        from .plugins import failed_plugins

        failed = failed_plugins()
        hint = ""
        if failed:
            hint = "plugins that failed to load: " + "; ".join(
                f"{name}: {why}" for name, why in sorted(failed.items()))
        raise UnknownKeyError(self.kind, key, self._registry.keys(), hint)

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
        source = getattr(_context, "source", None) or _dotted(class_)
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
                self._sources[change.key] = change.previous_source or _dotted(change.previous)

    def source_of(self, key: Hashable) -> str:
        """Who registered ``key``: a plugin name, or the class's dotted path."""
        self.get_class(key)
        return self._sources[key]

    def sources(self) -> dict[str, str]:
        """Every key (as a string) with who registered it."""
        self._ensure_plugins()
        with self._lock:
            return {str(key): source for key, source in self._sources.items()}

    def __repr__(self) -> str:
        return f"<Registry {self.kind}: {', '.join(map(str, self._registry))}>"
