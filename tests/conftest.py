"""Shared fixtures: storages for every backend, managers on fresh sessions."""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import tests.tasks  # noqa: F401 - registers the shared tasks
from tests.helpers import HeldTaskRunner
from triggerhooks import TriggerManager
from triggerhooks.runners import ThreadingTaskRunner, task_runners
from triggerhooks.storages import (
    MemoryStorageBackend,
    RedisStorageBackend,
    SqliteStorageBackend,
    StorageBackend,
)
from triggerhooks.storages.memory import MemoryStore

StorageFactory = Callable[..., StorageBackend]

BACKENDS = ["memory", "sqlite", "redis"]
RUNNERS = ["inline", "threading"]

REDIS_URL = "redis://127.0.0.1:6379/0"
"""The shared test Redis; tests write only under ``redis_prefix`` and delete what they wrote."""


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    """A key prefix unique to this test run; every key under it is deleted at the end."""
    import redis

    prefix = f"thtest-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_storage(backend: str, tmp_path: Path,
                 request: pytest.FixtureRequest) -> Iterator[StorageFactory]:
    """Build storages of the parametrized backend; sessions are removed afterwards.

    Storages made with the same uid share one session (as across processes).
    """
    created: list[StorageBackend] = []
    store = MemoryStore()
    sqlite_path = tmp_path / "triggerhooks.sqlite3"
    prefix = request.getfixturevalue("redis_prefix") if backend == "redis" else ""

    def make(uid: str | None = None) -> StorageBackend:
        uid = uid or f"test-{uuid.uuid4().hex[:12]}"
        storage: StorageBackend
        if backend == "memory":
            storage = MemoryStorageBackend(uid, store=store)
        elif backend == "sqlite":
            storage = SqliteStorageBackend(uid, sqlite_path)
        elif backend == "redis":
            storage = RedisStorageBackend(uid, REDIS_URL, prefix=prefix)
        else:  # pragma: no cover - a backend named in BACKENDS without a branch here
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


@pytest.fixture(params=RUNNERS)
def runner_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def any_manager(storage: StorageBackend, runner_name: str) -> TriggerManager:
    """A manager on a fresh session, once per built-in runner; call ``settle()`` after changes."""
    return TriggerManager(storage, task_runner=runner_name)


@pytest.fixture
def held() -> Iterator[type[HeldTaskRunner]]:
    """The ``held`` runner: it keeps instances ``scheduled`` until the test releases them."""
    task_runners.register("held")(HeldTaskRunner)
    try:
        yield HeldTaskRunner
    finally:
        HeldTaskRunner.held.clear()
        task_runners.unregister("held")


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
