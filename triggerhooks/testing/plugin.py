"""The pytest plugin (entry point ``pytest11``): fixtures for testing with triggerhooks.

Every fixture name starts with ``triggerhooks_`` so it never shadows a
project's own fixtures. The storage URL comes from the
``--triggerhooks-storage-url`` option, the ``triggerhooks_storage_url`` ini
setting, or overriding the fixture of that name; it defaults to ``memory://``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from ..manager import TriggerManager
from ..runners import ThreadingTaskRunner
from ..storages import MemoryStorageBackend, StorageBackend, open_storage
from .signals import CapturedSignals, capture_signals

__all__ = [
    "triggerhooks_manager",
    "triggerhooks_signals",
    "triggerhooks_storage",
    "triggerhooks_storage_url",
]

DEFAULT_URL = "memory://"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("triggerhooks")
    group.addoption("--triggerhooks-storage-url", dest="triggerhooks_storage_url", default=None,
                    metavar="URL", help="storage for the triggerhooks_* fixtures "
                                        f"(default: {DEFAULT_URL})")
    parser.addini("triggerhooks_storage_url", f"storage for the triggerhooks_* fixtures "
                                              f"(default: {DEFAULT_URL})", default=DEFAULT_URL)


@pytest.fixture
def triggerhooks_storage_url(request: pytest.FixtureRequest) -> str:
    """The storage URL for :func:`triggerhooks_storage`; override it to test another backend."""
    option = request.config.getoption("triggerhooks_storage_url")
    return str(option or request.config.getini("triggerhooks_storage_url") or DEFAULT_URL)


@pytest.fixture
def triggerhooks_storage(triggerhooks_storage_url: str) -> Iterator[StorageBackend]:
    """A storage on a new session (unique uid), deleted after the test."""
    storage = open_storage(triggerhooks_storage_url, f"test-{uuid.uuid4().hex}")
    try:
        yield storage
    finally:
        ThreadingTaskRunner.join_all(timeout=60)
        storage.clear()
        if isinstance(storage, MemoryStorageBackend):
            storage.store.forget(storage.uid)


@pytest.fixture
def triggerhooks_manager(triggerhooks_storage: StorageBackend) -> TriggerManager:
    """A :class:`~triggerhooks.TriggerManager` on a new session."""
    return TriggerManager(triggerhooks_storage)


@pytest.fixture
def triggerhooks_signals() -> Iterator[CapturedSignals]:
    """Every triggerhooks signal sent during the test (see :func:`~triggerhooks.capture_signals`)."""
    with capture_signals() as captured:
        yield captured
