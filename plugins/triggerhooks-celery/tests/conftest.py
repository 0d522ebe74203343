"""Fixtures of the Celery tests: a fleet of real worker processes on the shared Redis.

Every key the run creates (broker queues, results, the tasks' records) starts
with one prefix, deleted at the end. Workers are solo-pool processes started
fast (no gossip, mingle, heartbeat or remote control) and always terminated.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

PREFIX = f"th-celery-test-{uuid.uuid4().hex[:10]}:"

# Set before anything reads them: the test tasks' module and the default Celery app.
os.environ["TH_CELERY_TEST_PREFIX"] = PREFIX
os.environ["TRIGGERHOOKS_CELERY_CONFIG"] = "celery_test_config"

import celery_test_tasks  # noqa: E402, F401 - registers the test tasks here too
from celery_testing import REDIS_URL, Fleet, session_storage  # noqa: E402 - reads the prefix set above

from triggerhooks import StorageBackend  # noqa: E402


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:  # pragma: no cover - CI starts Redis
        pytest.fail(f"the Celery tests need Redis at {REDIS_URL}: {exc}")
    yield client
    for key in list(client.scan_iter(match=f"{PREFIX}*", count=1000)):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session")
def fleet(redis_client: redis.Redis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Two worker processes for the whole run, terminated at its end whatever happens."""
    workers = Fleet(tmp_path_factory.mktemp("celery-workers"), ["w1", "w2"])
    try:
        workers.start()
        yield workers
    finally:
        workers.stop()


@pytest.fixture
def healthy_fleet(fleet: Fleet) -> Fleet:
    """The fleet, with any worker a previous test killed started again."""
    fleet.start()
    return fleet


@pytest.fixture(scope="session")
def sqlite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("celery-sessions") / "sessions.sqlite3"


@pytest.fixture
def storage(sqlite_path: Path) -> Iterator[StorageBackend]:
    """A storage on a new session that every worker reaches, cleared afterwards."""
    created = session_storage(f"celery-{uuid.uuid4().hex[:12]}", sqlite_path)
    yield created
    created.clear()
