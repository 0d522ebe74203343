"""Shared fixtures: storages for every backend, managers on fresh sessions."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import tests.tasks  # noqa: F401 - registers the shared tasks
from triggerhooks import TriggerManager
from triggerhooks.runners import ThreadingTaskRunner
from triggerhooks.storages import (
    MemoryStorageBackend,
    RedisStorageBackend,
    SqliteStorageBackend,
    StorageBackend,
)
from triggerhooks.storages.memory import MemoryStore

StorageFactory = Callable[..., StorageBackend]

BACKENDS = ["memory", "sqlite", "redis"]

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


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    yield
    ThreadingTaskRunner.join_all(timeout=30)
