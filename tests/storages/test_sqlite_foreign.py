"""An existing SQLite file of another application is refused, and left byte for byte as it was:
no table added, no switch to WAL, no ``user_version`` set, no lock file beside it."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from triggerhooks import (
    ForeignDatabaseError,
    SqliteStorageBackend,
    StorageUnavailableError,
    TriggerManager,
)
from triggerhooks.cli import cli


def _make(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


APPLICATIONS: dict[str, Callable[[Path], None]] = {
    "a table": lambda path: _make(path, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
                                  "INSERT INTO users VALUES (1, 'ada')"),
    "a table beside ours": lambda path: _make(
        path, "CREATE TABLE th_sessions (uid TEXT PRIMARY KEY)", "CREATE TABLE notes (x)"),
    "a view": lambda path: _make(path, "CREATE VIEW answer AS SELECT 42"),
    "an application id": lambda path: _make(path, "PRAGMA application_id = 1234"),
    "an index of its own": lambda path: _make(
        path, "CREATE TABLE th_keys (uid TEXT, key TEXT, record BLOB)",
        "CREATE INDEX by_key ON th_keys (key)"),
}


def _fingerprint(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.iterdir())}


@pytest.mark.parametrize("holding", list(APPLICATIONS))
def test_another_applications_file_is_refused_and_left_unchanged(holding: str,
                                                                 tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    APPLICATIONS[holding](path)
    before = _fingerprint(tmp_path)
    storage = SqliteStorageBackend("s", path)
    for attempt in (lambda: TriggerManager(storage).fire("a"), lambda: storage.tasks,
                    lambda: storage.session_uids(), storage.clear):
        with pytest.raises(ForeignDatabaseError) as caught:
            attempt()
        message = str(caught.value)
        assert message.startswith(f"SQLite database {path} belongs to another application")
        assert "triggerhooks left it unchanged" in message
    assert isinstance(caught.value, StorageUnavailableError)
    assert _fingerprint(tmp_path) == before
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    finally:
        conn.close()


def test_the_message_names_what_is_foreign(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    APPLICATIONS["a table beside ours"](path)
    with pytest.raises(ForeignDatabaseError, match=r"it holds table notes, which are not"):
        SqliteStorageBackend("s", path).tasks  # noqa: B018


def test_the_command_line_says_so_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    APPLICATIONS["a table"](path)
    before = _fingerprint(tmp_path)
    result = CliRunner().invoke(cli, ["--storage", f"sqlite:///{path}", "fire", "s", "a"])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: SQLite database {path} belongs to another")
    assert _fingerprint(tmp_path) == before


def test_an_empty_file_and_a_file_of_ours_are_used(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    TriggerManager(SqliteStorageBackend("s", empty)).fire("a")
    assert SqliteStorageBackend("s", empty).latest_kwargs == {"a": {}}
    ours = tmp_path / "ours.db"
    TriggerManager(SqliteStorageBackend("s", ours)).fire("a")
    TriggerManager(SqliteStorageBackend("t", ours)).fire("b")  # the same process, a new pool
    assert SqliteStorageBackend("s", ours).session_uids() == ["s", "t"]
