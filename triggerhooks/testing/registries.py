"""Registering a class for the length of a test, and no longer."""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from ..registries import Registry

__all__ = ["registered_class"]

T = TypeVar("T")


@contextmanager
def registered_class(registry: Registry[T], key: Hashable, cls: type[T]) -> Iterator[type[T]]:
    """Register ``cls`` under ``key`` in ``registry`` (a runner, a manager, a storage
    backend that a test defines) while the block runs, and unregister it afterwards."""
    registry.register(key)(cls)
    try:
        yield cls
    finally:
        registry.unregister(key)
