"""How the suite opens a session on each built-in storage backend.

``STORAGE_FACTORIES`` maps a key of ``storage_backends`` to a function of the
test's fixture request that returns an opener of sessions by uid. The
backend-parametrized tests and the storage contract run on each of ``BACKENDS``,
the built-in keys; each must have a factory (``tests/storages/test_contract.py``
checks it).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from triggerhooks.storages import (
    MemoryStorageBackend,
    MemoryStore,
    PostgresStorageBackend,
    RedisStorageBackend,
    SqliteStorageBackend,
    StorageBackend,
    storage_backends,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
"""The shared test Redis; tests write only under ``redis_prefix`` and delete what they wrote."""

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
"""The shared test PostgreSQL; tests write only in the schema of ``postgres_schema`` (one per
run, dropped at the end)."""
FAST_COMMITS = "options=-c%20synchronous_commit%3Doff"
"""libpq's option that lets a commit return before its WAL reaches the disk: the suite's
sessions need not survive a crash of the server (the fault tests' own servers keep the
durable default)."""

OpenSession = Callable[[str], StorageBackend]


def memory(request: pytest.FixtureRequest) -> OpenSession:
    """A store of the test's own: its sessions are shared within the test and seen by no other."""
    store = MemoryStore()
    return lambda uid: MemoryStorageBackend(uid, store=store)


def sqlite(request: pytest.FixtureRequest) -> OpenSession:
    path = request.getfixturevalue("tmp_path") / "triggerhooks.sqlite3"
    return lambda uid: SqliteStorageBackend(uid, path)


def redis(request: pytest.FixtureRequest) -> OpenSession:
    prefix = request.getfixturevalue("redis_prefix")
    return lambda uid: RedisStorageBackend(uid, REDIS_URL, prefix=prefix)


def postgresql(request: pytest.FixtureRequest) -> OpenSession:
    schema = request.getfixturevalue("postgres_schema")
    url = f"{POSTGRES_URL}?{FAST_COMMITS}"
    return lambda uid: PostgresStorageBackend(uid, url, schema=schema)


STORAGE_FACTORIES: dict[str, Callable[[pytest.FixtureRequest], OpenSession]] = {
    "memory": memory,
    "sqlite": sqlite,
    "redis": redis,
    "postgresql": postgresql,
}

BACKENDS = [str(key) for key in storage_backends
            if storage_backends.get_class(key).__module__.startswith("triggerhooks.")]
"""Every built-in storage backend (plugins' backends run the contract in their own suites)."""
