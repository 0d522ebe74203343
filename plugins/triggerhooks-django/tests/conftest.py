"""Fixtures of the Django plugin's tests: a session per test under this run's Redis prefix.

The project (``testproject``) runs on PostgreSQL; sessions live in Redis under
a prefix of this run, every key of which is deleted at its end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection
from triggerhooks_django import get_manager
from triggerhooks_django.databases import postgres_storage_installed
from triggerhooks_django.signals import DJANGO_SIGNALS

from triggerhooks import ThreadingTaskRunner, TriggerManager


@pytest.fixture(scope="session", autouse=True)
def _redis_prefix_deleted() -> Iterator[None]:
    """Every key of this run's prefix goes at the end."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:  # pragma: no cover - CI starts Redis
        pytest.fail(f"the Django plugin's tests need Redis at {settings.REDIS_URL}: {exc}")
    yield
    keys = list(client.scan_iter(match=f"{settings.PREFIX}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="session", autouse=True)
def _storage_connections_closed(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """Before the test database is dropped, end the connections a PostgreSQL storage
    (which keeps a pool of its own) still holds to it: PostgreSQL drops no database in use."""
    yield
    if not postgres_storage_installed():
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")


@pytest.fixture(autouse=True)
def _threads_joined() -> Iterator[None]:
    yield
    ThreadingTaskRunner.join_all(timeout=30)


@pytest.fixture(autouse=True)
def _django_receivers_disconnected() -> Iterator[None]:
    """What a test (or a docs example) connects to Django signals with ``@on`` goes after it."""
    before = set(DJANGO_SIGNALS.connected_receivers())
    yield
    for signal, receiver in DJANGO_SIGNALS.connected_receivers():
        if (signal, receiver) not in before:
            DJANGO_SIGNALS.disconnect(signal, receiver)


@pytest.fixture
def uid() -> str:
    """A new session uid."""
    return f"django-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def manager(uid: str) -> TriggerManager:
    """A manager on a new session, as the settings make it."""
    return get_manager(uid)
