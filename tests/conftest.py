"""Shared fixtures: storages for every backend, managers on fresh sessions."""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Iterator

import pytest

import tests.tasks  # noqa: F401 - registers the shared tasks
from tests.backends import BACKENDS, POSTGRES_URL, REDIS_URL, STORAGE_FACTORIES
from triggerhooks import TriggerManager
from triggerhooks.runners import ThreadingTaskRunner
from triggerhooks.storages import StorageBackend
from triggerhooks.testing import HoldingRunner, holding_runner
from triggerhooks.testing.contract import StorageFactory, storage_factory

RUNNERS = ["inline", "threading"]


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


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str]:
    """A PostgreSQL schema unique to this test run (its tables are made on first use); it is
    dropped at the end, with everything in it."""
    import psycopg

    schema = f"thtest_{uuid.uuid4().hex[:10]}"
    yield schema
    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_storage(backend: str, request: pytest.FixtureRequest) -> Iterator[StorageFactory]:
    """Build storages of the parametrized backend; sessions are removed afterwards.

    Storages made with the same uid share one session (as across processes).
    """
    if backend not in STORAGE_FACTORIES:
        pytest.fail(f"the built-in storage backend {backend!r} has no factory in tests/backends.py")
    with storage_factory(STORAGE_FACTORIES[backend](request)) as make:
        yield make


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
def held() -> Iterator[type[HoldingRunner]]:
    """The ``held`` runner: it keeps instances ``scheduled`` until the test releases them."""
    with holding_runner("held") as runner:
        yield runner


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    yield
    ThreadingTaskRunner.join_all(timeout=30)


@pytest.fixture
def isolated_signals() -> Iterator[None]:
    """Disconnect, after the test, every receiver it connected to a triggerhooks signal, and
    forget the events it declared (``declare_event``)."""
    from triggerhooks.events.declaring import _forget_events, declared_events
    from triggerhooks.signals import namespace

    before = {name: set(signal.receivers) for name, signal in namespace.items()}
    declared = set(declared_events())
    yield
    _forget_events(set(declared_events()) - declared)
    for name, signal in namespace.items():
        for receiver_id in set(signal.receivers) - before[name]:
            receiver = signal.receivers[receiver_id]
            if isinstance(receiver, weakref.ref):
                receiver = receiver()
            if receiver is not None:
                signal.disconnect(receiver)


def _sendable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under pytest-xdist, a worker sends each report as UTF-8: the hostile tests' lone
    surrogates in captured output (or a failure's text) are sent escaped instead."""
    outcome = yield
    if not hasattr(item.config, "workerinput"):
        return
    report = outcome.get_result()  # type: ignore[attr-defined]
    report.sections = [(title, _sendable(text)) for title, text in report.sections]
    if report.longrepr is not None and not isinstance(report.longrepr, tuple):
        report.longrepr = _sendable(str(report.longrepr))
