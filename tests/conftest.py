"""Shared fixtures: storages for every backend, managers on fresh sessions."""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Callable, Iterator

import pytest

import tests.tasks  # noqa: F401 - registers the shared tasks
from triggerhooks import TriggerManager
from triggerhooks.runners import ThreadingTaskRunner
from triggerhooks.storages import MemoryStorageBackend, StorageBackend
from triggerhooks.storages.memory import MemoryStore

StorageFactory = Callable[..., StorageBackend]

BACKENDS = ["memory"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_storage(backend: str) -> Iterator[StorageFactory]:
    """Build storages of the parametrized backend; sessions are removed afterwards."""
    created: list[StorageBackend] = []
    store = MemoryStore()

    def make(uid: str | None = None) -> StorageBackend:
        uid = uid or f"test-{uuid.uuid4().hex[:12]}"
        if backend == "memory":
            storage: StorageBackend = MemoryStorageBackend(uid, store=store)
        else:  # pragma: no cover - other backends are added with their storages
            raise ValueError(backend)
        created.append(storage)
        return storage

    yield make
    for storage in created:
        storage.clear()


@pytest.fixture
def storage(make_storage: StorageFactory) -> StorageBackend:
    return make_storage()


@pytest.fixture
def manager(storage: StorageBackend) -> TriggerManager:
    return TriggerManager(storage)


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    yield
    ThreadingTaskRunner.join_all(timeout=30)


@pytest.fixture
def isolated_signals() -> Iterator[None]:
    """Disconnect, after the test, every receiver it connected to a triggerhooks signal."""
    from triggerhooks.signals import namespace

    before = {name: set(signal.receivers) for name, signal in namespace.items()}
    yield
    for name, signal in namespace.items():
        for receiver_id in set(signal.receivers) - before[name]:
            receiver = signal.receivers[receiver_id]
            if isinstance(receiver, weakref.ref):
                receiver = receiver()
            if receiver is not None:
                signal.disconnect(receiver)
