"""Session references: a manager described as JSON and rebuilt elsewhere."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from triggerhooks import TriggerManager
from triggerhooks.manager import trigger_managers
from triggerhooks.serialization import dumps, loads
from triggerhooks.sessions import SessionReferenceError, open_session, session_reference
from triggerhooks.storages import MemoryStorageBackend, SqliteStorageBackend, StorageBackend
from triggerhooks.testing import registered_class


class AuditedManager(TriggerManager):
    """A registered subclass: rebuilt as itself."""


class Unregistered(TriggerManager):
    """Inherits the key "default" but is not registered under any key."""


@pytest.fixture
def sqlite_storage(tmp_path: Path) -> Iterator[StorageBackend]:
    """References are for storages other processes reach: SQLite here."""
    storage = SqliteStorageBackend(f"tests-sessions-{uuid.uuid4().hex[:8]}", tmp_path / "s.sqlite3")
    yield storage
    storage.clear()


def test_a_reference_is_json_and_rebuilds_the_same_session(sqlite_storage: StorageBackend) -> None:
    manager = TriggerManager(sqlite_storage, task_runner="threading",
                             finalize_log_level=logging.ERROR)
    manager.update_configuration({"t": {"after": ["go"], "run": "tests.noop"}})
    reference = loads(dumps(session_reference(manager)))
    assert reference["manager"] == "default"
    assert reference["storage"] == sqlite_storage.reference()

    rebuilt = open_session(reference)

    assert type(rebuilt) is TriggerManager
    assert rebuilt is not manager and rebuilt.storage.uid == sqlite_storage.uid
    assert rebuilt.task_runner_name == "threading"
    assert rebuilt.finalize_log_level == logging.ERROR
    assert set(rebuilt.storage.tasks) == {"t"}


def test_a_registered_subclass_is_rebuilt_as_itself(sqlite_storage: StorageBackend) -> None:
    with registered_class(trigger_managers, "tests.audited", AuditedManager):
        reference = session_reference(AuditedManager(sqlite_storage))
        assert reference["manager"] == "tests.audited"
        assert type(open_session(reference)) is AuditedManager


def test_an_unregistered_manager_class_is_refused_with_the_fix(sqlite_storage: StorageBackend) -> None:
    with pytest.raises(SessionReferenceError, match=r"Unregistered is not registered.*register"):
        session_reference(Unregistered(sqlite_storage))


def test_a_memory_session_cannot_be_referenced() -> None:
    with pytest.raises(SessionReferenceError, match="memory"):
        session_reference(TriggerManager(MemoryStorageBackend("tests-sessions-memory")))
