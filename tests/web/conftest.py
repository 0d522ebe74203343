"""Fixtures of the web inspector's tests: sessions on each backend (a store of the test's
own), inspectors over them with and without the token."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from starlette.testclient import TestClient

from tests.backends import REDIS_URL, STORAGE_FACTORIES
from tests.web.helpers import client_for
from triggerhooks.storages import RedisStorageBackend, StorageBackend
from triggerhooks.testing.contract import StorageFactory, storage_factory


@pytest.fixture
def make_session(backend: str, request: pytest.FixtureRequest) -> Iterator[StorageFactory]:
    """Opens sessions on the parametrized backend, in a store of the test's own (so the
    sessions list shows this test's sessions only); cleared afterwards."""
    if backend == "redis":
        prefix = f"{request.getfixturevalue('redis_prefix')}-web-{uuid.uuid4().hex[:8]}"
        opener: Callable[[str], StorageBackend] = lambda uid: RedisStorageBackend(  # noqa: E731
            uid, REDIS_URL, prefix=prefix)
    else:
        opener = STORAGE_FACTORIES[backend](request)
    with storage_factory(opener) as make:
        yield make


@pytest.fixture
def client(make_session: StorageFactory) -> TestClient:
    """An inspector started with the token ``helpers.TOKEN``."""
    return client_for(make_session)


@pytest.fixture
def read_only(make_session: StorageFactory) -> TestClient:
    """An inspector started without a token."""
    return client_for(make_session, None)
