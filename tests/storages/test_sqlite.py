"""What only the SQLite backend does: files, URLs, WAL, locking, errors."""

from __future__ import annotations

import fcntl
import re
import sqlite3
import threading
from pathlib import Path

import pytest

from tests.helpers import run_threads
from triggerhooks import (
    ConflictError,
    SqliteStorageBackend,
    StorageUnavailableError,
    ThreadingTaskRunner,
    TriggerManager,
    open_storage,
    storage_backends,
)
from triggerhooks.storages import sqlite as sqlite_module
from triggerhooks.storages.sqlite import SQLITE_PATH_ENV
from triggerhooks.testing import wait_for


def test_path_from_argument_environment_or_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(SQLITE_PATH_ENV, raising=False)
    assert SqliteStorageBackend("s").path == str(tmp_path / "triggerhooks.sqlite3")
    monkeypatch.setenv(SQLITE_PATH_ENV, "sub.db")
    assert SqliteStorageBackend("s").path == str(tmp_path / "sub.db")
    assert SqliteStorageBackend("s", tmp_path / "x.db").path == str(tmp_path / "x.db")
    storage = storage_backends.get("sqlite", "s")
    assert isinstance(storage, SqliteStorageBackend) and storage.path == str(tmp_path / "sub.db")


def test_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = open_storage("sqlite:///data/th.db", "s")
    assert isinstance(relative, SqliteStorageBackend)
    assert relative.path == str(tmp_path / "data" / "th.db")
    absolute = open_storage(f"sqlite:///{tmp_path}/abs.db?timeout=2&synchronous=full", "s")
    assert isinstance(absolute, SqliteStorageBackend)
    assert (absolute.path, absolute.timeout, absolute.synchronous) == (
        str(tmp_path / "abs.db"), 2.0, "FULL")
    monkeypatch.setenv(SQLITE_PATH_ENV, "env.db")
    assert open_storage("sqlite://", "s").path == str(tmp_path / "env.db")  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="unknown option 'journal'"):
        open_storage("sqlite:///x.db?journal=off", "s")
    with pytest.raises(ValueError, match="not a SQLite URL"):
        open_storage("sqlite://host/x.db", "s")
    with pytest.raises(ValueError, match="needs a file path"):
        SqliteStorageBackend("s", ":memory:")
    with pytest.raises(ValueError, match="synchronous must be one of"):
        SqliteStorageBackend("s", "x.db", synchronous="sometimes")


def test_default_storage_url_is_sqlite_in_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRIGGERHOOKS_STORAGE_URL", raising=False)
    monkeypatch.delenv(SQLITE_PATH_ENV, raising=False)
    storage = open_storage(None, "s")
    assert isinstance(storage, SqliteStorageBackend)
    TriggerManager(storage).fire("a")
    assert (tmp_path / "triggerhooks.sqlite3").exists()


def test_the_default_storage_url_takes_the_sqlite_path_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRIGGERHOOKS_STORAGE_URL", raising=False)
    monkeypatch.setenv(SQLITE_PATH_ENV, "sessions/env.sqlite3")
    (tmp_path / "sessions").mkdir()
    storage = open_storage(None, "s")
    assert isinstance(storage, SqliteStorageBackend)
    assert storage.path == str(tmp_path / "sessions" / "env.sqlite3")
    TriggerManager(storage).fire("a", {"x": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sessions"]  # no triggerhooks.sqlite3
    assert SqliteStorageBackend("s", tmp_path / "sessions" / "env.sqlite3").latest_kwargs == {
        "a": {"x": 1}}
    # An explicit URL still wins over the environment.
    explicit = open_storage(f"sqlite:///{tmp_path}/other.sqlite3", "s")
    assert explicit.path == str(tmp_path / "other.sqlite3")  # type: ignore[attr-defined]


def test_file_is_in_wal_mode_with_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "th.db"
    TriggerManager(SqliteStorageBackend("s", path)).fire("a", {"x": 1})
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 5
        assert conn.execute("SELECT trigger, kwargs FROM th_fired").fetchall() == [
            ("a", b'{"x":1}')]
    finally:
        conn.close()


def test_unusable_file_gives_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "th.db"
    storage = SqliteStorageBackend("s", missing)
    with pytest.raises(StorageUnavailableError, match=re.escape(f"SQLite database {missing} is unusable")):
        TriggerManager(storage).fire("a")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database file" * 100)
    with pytest.raises(StorageUnavailableError, match=r"garbage\.db"):
        SqliteStorageBackend("s", garbage).latest_kwargs  # noqa: B018


def test_a_writer_holding_the_lock_too_long_gives_a_conflict_error(tmp_path: Path) -> None:
    path = tmp_path / "th.db"
    storage = SqliteStorageBackend("s", path, timeout=0.05)
    manager = TriggerManager(storage)
    manager.fire("a", {"n": 1})
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(ConflictError, match="stayed locked"):
            manager.fire("a", {"n": 2})
        assert storage.latest_kwargs == {"a": {"n": 1}}  # readers are not blocked (WAL)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    manager.fire("a", {"n": 3})
    assert storage.latest_kwargs == {"a": {"n": 3}}


def test_threads_share_one_file_safely(tmp_path: Path) -> None:
    path = tmp_path / "th.db"
    manager = TriggerManager(SqliteStorageBackend("s", path), task_runner="threading")
    manager.update_configuration({"pages": {"after": ["start"], "andEvery": "page",
                                            "run": "tests.noop"},
                                  "all": {"after": [f"t{i}" for i in range(40)],
                                          "run": "tests.noop"}})
    manager.fire("start")

    def fire(offset: int) -> None:
        own = TriggerManager(SqliteStorageBackend("s", path), task_runner="threading")
        for number in range(10):
            own.fire("page", {"n": offset + number})
            own.fire(f"t{offset // 10}")

    assert run_threads(fire, range(0, 40, 10)) == []
    ThreadingTaskRunner.join_all(timeout=30)
    manager.fire("done")
    storage = manager.storage
    pages = storage.instances_of_task("pages")
    assert len(pages) == 40 and all(i.status == "finished" for i in pages)
    assert sorted(i.kwargs["page"]["n"] for i in pages) == list(range(40))
    assert [(i.name, i.status) for i in storage.instances_of_task("all")] == [
        ("all#0", "unstarted")]
    for number in range(40):
        manager.fire(f"t{number}")
    ThreadingTaskRunner.join_all(timeout=30)
    assert storage["all#0"].status == "finished"
    assert storage.is_finalized


def test_a_session_stored_without_counts_still_works(tmp_path: Path) -> None:
    """Counts of missing triggers came with schema version 2: a session stored before has
    none, and the engine then asks of each trigger whether it fired."""
    path = tmp_path / "th.db"
    manager = TriggerManager(SqliteStorageBackend("s", path))
    manager.update_configuration({"t": {"after": ["a", "b"], "run": "tests.noop"}})
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute("DELETE FROM th_waiting")
        manager.fire("a")
        assert [(i.name, i.status) for i in manager.storage] == [("t#0", "unstarted")]
        manager.fire("b")
        assert [i.status for i in manager.storage] == ["finished"]
        assert conn.execute("SELECT COUNT(*) FROM th_waiting").fetchone() == (0,)
    finally:
        conn.close()


def test_writers_take_turns_on_a_file_beside_the_database(tmp_path: Path) -> None:
    path = tmp_path / "th.db"
    manager = TriggerManager(SqliteStorageBackend("s", path, timeout=0.2))
    manager.fire("a")
    lock = tmp_path / "th.db-writers"
    assert lock.exists()
    with open(lock, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ConflictError, match="stayed locked"):
            manager.fire("b")
    manager.fire("b")
    assert set(manager.storage.latest_kwargs) == {"a", "b"}


def test_the_log_is_checkpointed_on_a_thread_of_its_own_not_by_a_writer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit that finds the write-ahead log grown wakes a checkpointing thread; writers
    never copy the log themselves below the backstop (a checkpoint inside a commit would
    keep every other writer waiting for its fsyncs)."""
    monkeypatch.setattr(sqlite_module, "WAL_CHECKPOINT_PAGES", 64)
    path = tmp_path / "th.db"
    manager = TriggerManager(SqliteStorageBackend("s", path))
    manager.fire("first")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000  # a fresh connection
    with manager.storage._connection() as writer:  # type: ignore[attr-defined]
        assert (writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
                == sqlite_module.WAL_BACKSTOP_PAGES)
    small = path.stat().st_size
    for i in range(200):
        manager.fire(f"t{i}", {"pad": "x" * 4000})
    wait_for(lambda: path.stat().st_size > small + 512 * 1024, 10,
             "the log's pages copied into the database")
    assert any(thread.name == "triggerhooks SQLite checkpoints" for thread in threading.enumerate())
    conn.close()
    assert len(manager.storage.latest_kwargs) == 201
