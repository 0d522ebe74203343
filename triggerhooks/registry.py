"""Class registries that fill themselves from plugins the first time they are used."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable
from typing import Any, TypeVar

from class_registry import ClassRegistry

from .exceptions import DuplicateKeyError, UnknownKeyError

__all__ = ["Registry"]

T = TypeVar("T")

_loading = threading.local()


def _describe(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _same_definition(a: type, b: type) -> bool:
    """A class defined again by the same code (a module reloaded) is not a collision."""
    return a is b or (a.__module__ == b.__module__ and a.__qualname__ == b.__qualname__)


class Registry(ClassRegistry[T]):
    """A :class:`class_registry.ClassRegistry` that

    * loads the plugins (built-ins included) before the first lookup,
    * refuses two different classes under one key, naming both sources,
    * raises :class:`UnknownKeyError` listing the known keys.
    """

    def __init__(self, kind: str, attr_name: str | None = None) -> None:
        super().__init__(attr_name=attr_name, unique=True)
        self.kind = kind
        self._sources: dict[Hashable, str] = {}
        self._lock = threading.RLock()

    @staticmethod
    def _ensure_plugins() -> None:
        from . import plugins

        plugins.load_registrations()

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
        self._ensure_plugins()
        return key in self._registry

    def __missing__(self, key: Hashable) -> type[T]:
        from . import plugins

        failed = plugins.failed_plugins()
        hint = ""
        if failed:
            hint = "plugins that failed to load: " + ", ".join(sorted(failed))
        raise UnknownKeyError(self.kind, key, self._registry.keys(), hint)

    def _register(self, key: Hashable, class_: type[T]) -> None:
        with self._lock:
            if key in ("", None):
                raise ValueError(f"cannot register {class_!r} under an empty key")
            source = getattr(_loading, "source", None) or _describe(class_)
            existing = self._registry.get(key)
            if existing is not None and not _same_definition(existing, class_):
                raise DuplicateKeyError(
                    f"{self.kind} {key!r} is registered twice: by {self._sources[key]} "
                    f"and by {source}")
            self._registry[key] = class_
            self._sources[key] = source

    def _unregister(self, key: Hashable) -> type[T]:
        with self._lock:
            self._sources.pop(key, None)
            return super()._unregister(key)

    def source_of(self, key: Hashable) -> str:
        """Who registered ``key``: a plugin name or the class's dotted path."""
        self.get_class(key)
        return self._sources[key]

    def sources(self) -> dict[str, str]:
        """Every key with who registered it."""
        self._ensure_plugins()
        return {str(key): source for key, source in self._sources.items()}

    def register_from(self, source: str, fn: Callable[[Registry[T]], Any]) -> None:
        """Call ``fn(self)`` recording ``source`` as the origin of what it registers."""
        previous = getattr(_loading, "source", None)
        _loading.source = source
        try:
            fn(self)
        finally:
            _loading.source = previous

    def __repr__(self) -> str:
        return f"<Registry {self.kind}: {', '.join(map(str, self._registry))}>"
