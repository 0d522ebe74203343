"""Fire keys, the session list and schema version 3 on the SQLite backend.

Real files and real processes: a fresh process opens a file as another program would,
and racing writers are spawned processes.
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT
from triggerhooks import (
    ConflictError,
    SqliteStorageBackend,
    StorageUnavailableError,
    TriggerManager,
)
from triggerhooks.exceptions import FireKeyReusedError
from triggerhooks.models import Firing
from triggerhooks.serialization import JsonDict
from triggerhooks.storages import open_reference

PAGES = {"pages": {"after": ["start"], "andEvery": "page", "run": "tests.noop"}}
"""One instance per firing of ``page``: a firing applied twice would show as two."""


def _manager(path: Path, uid: str = "s") -> TriggerManager:
    return TriggerManager(SqliteStorageBackend(uid, path))


def _rows(path: Path, sql: str) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _in_a_new_process(code: str) -> Any:
    """Run ``code`` in a fresh interpreter (its own connections, nothing cached) and return
    the JSON it prints last."""
    done = subprocess.run([sys.executable, "-c", "import tests.tasks\n" + code], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


# -- a keyed firing applied once ---------------------------------------------------------


def test_a_repeated_keyed_fire_is_applied_once_and_answers_the_same(tmp_path: Path) -> None:
    path = tmp_path / "th.db"
    manager = _manager(path)
    assert manager.storage.supports_fire_keys
    manager.update_configuration(PAGES)
    manager.fire("start")
    first = manager.fire("page", {"n": 1, "m": 2}, key="page-1")
    assert (first.repeated, first.ignored, first.scheduled) == (False, False, ("pages#0",))
    assert first.fired_at is not None
    again = manager.fire("page", {"n": 1, "m": 2}, key="page-1")
    assert again == Firing("page", "page-1", first.fired_at, ("pages#0",), repeated=True)
    # another storage object on the file, the kwargs' keys in another order: the same call
    other = _manager(path).fire("page", {"m": 2, "n": 1}, key="page-1")
    assert other == again
    storage = manager.storage
    assert [(i.name, i.status) for i in storage.instances_of_task("pages")] == [
        ("pages#0", "finished")]
    assert manager.fire("page", {"n": 1, "m": 2}, key="page-2").scheduled == ("pages#1",)
    assert len(storage.instances_of_task("pages")) == 2
    assert [key for (key,) in _rows(path, "SELECT key FROM th_keys ORDER BY key")] == [
        "page-1", "page-2"]


def test_a_key_reused_with_other_kwargs_or_trigger_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "th.db"
    manager = _manager(path)
    manager.update_configuration(PAGES)
    manager.fire("start")
    manager.fire("page", {"n": 1}, key="k")
    with pytest.raises(FireKeyReusedError, match="other kwargs") as other_kwargs:
        manager.fire("page", {"n": 2}, key="k")
    assert other_kwargs.value.committed is False
    with pytest.raises(FireKeyReusedError, match="for a firing of 'page', not 'start'"):
        manager.fire("start", {"n": 1}, key="k")
    storage = manager.storage
    assert storage.latest_kwargs["page"] == {"n": 1}  # nothing stored
    assert storage.latest_kwargs["start"] == {}
    assert len(storage.instances_of_task("pages")) == 1
    assert _rows(path, "SELECT COUNT(*) FROM th_keys") == [(1,)]


def test_keys_belong_to_their_session(tmp_path: Path) -> None:
    path = tmp_path / "th.db"
    for uid in ("a", "b"):
        manager = _manager(path, uid)
        manager.update_configuration(PAGES)
        manager.fire("start")
        assert not manager.fire("page", {"uid": uid}, key="k").repeated
        assert manager.fire("page", {"uid": uid}, key="k").repeated


# -- many processes, one key -------------------------------------------------------------

PROCESSES = 8
KEYS = 20


def _fire_keys(number: int, barrier: Any, reference: JsonDict, out: str) -> None:
    import tests.tasks  # noqa: F401 - registers the tasks in this process

    manager = TriggerManager(open_reference(reference))
    barrier.wait(timeout=60)
    firings = [manager.fire("page", {"k": k}, key=f"page-{k}").to_json() for k in range(KEYS)]
    Path(out, f"firings-{number}.json").write_text(json.dumps(firings))


@pytest.mark.slow
def test_processes_firing_the_same_keys_at_once_apply_each_once(tmp_path: Path) -> None:
    runs = tmp_path / "runs.log"
    storage = SqliteStorageBackend("s", tmp_path / "th.db")
    manager = TriggerManager(storage)
    manager.update_configuration({"pages": {
        "after": ["start"], "andEvery": "page", "run": "tests.record",
        "withParams": {"record": {"path": str(runs)}}}})
    manager.fire("start")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    processes = [ctx.Process(target=_fire_keys,
                             args=(number, barrier, storage.reference(), str(tmp_path)))
                 for number in range(PROCESSES)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * PROCESSES

    answers = [json.loads((tmp_path / f"firings-{n}.json").read_text()) for n in range(PROCESSES)]
    instances = storage.instances_of_task("pages")
    assert len(instances) == KEYS  # one per key, not one per process and key
    assert all(i.status == "finished" for i in instances)
    assert sorted(i.kwargs["page"]["k"] for i in instances) == list(range(KEYS))
    assert Counter(runs.read_text().split()) == {i.name: 1 for i in instances}
    for k in range(KEYS):
        firings = [process_answers[k] for process_answers in answers]
        assert sum(not f["repeated"] for f in firings) == 1  # applied by exactly one process
        assert len({(f["firedAt"], tuple(f["scheduled"])) for f in firings}) == 1  # one answer
        (scheduled,) = {tuple(f["scheduled"]) for f in firings}
        assert len(scheduled) == 1 and storage[scheduled[0]].kwargs["page"] == {"k": k}


# -- keys last as long as the session ----------------------------------------------------


def test_keys_survive_reopening_the_file_and_go_with_clear(tmp_path: Path) -> None:
    path = tmp_path / "th.db"
    manager = _manager(path)
    manager.update_configuration(PAGES)
    manager.fire("start")
    first = manager.fire("page", {"n": 1}, key="k")
    _manager(path, "other").fire("page", {"n": 1}, key="k")

    # a new process opens the file: the key is there
    code = (f"from triggerhooks import SqliteStorageBackend, TriggerManager\n"
            f"import json\n"
            f"manager = TriggerManager(SqliteStorageBackend('s', {str(path)!r}))\n"
            f"print(json.dumps(manager.fire('page', {{'n': 1}}, key='k').to_json()))\n")
    assert _in_a_new_process(code) == {**first.to_json(), "repeated": True}
    assert len(manager.storage.instances_of_task("pages")) == 1

    manager.storage.clear()
    assert _rows(path, "SELECT uid, key FROM th_keys") == [("other", "k")]
    manager.update_configuration(PAGES)
    manager.fire("start")
    fresh = manager.fire("page", {"n": 2}, key="k")  # a new session: the key is free again
    assert (fresh.repeated, fresh.scheduled) == (False, ("pages#0",))
    assert _manager(path, "other").fire("page", {"n": 1}, key="k").repeated


# -- an error before the commit stores nothing -------------------------------------------


def test_a_transition_that_fails_says_it_did_not_commit(tmp_path: Path) -> None:
    path = tmp_path / "th.db"
    manager = TriggerManager(SqliteStorageBackend("s", path, timeout=0.2))
    manager.update_configuration(PAGES)
    manager.fire("start")

    with open(tmp_path / "th.db-writers", "rb") as held:  # another writer's turn
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ConflictError) as waited:
            manager.fire("page", {"n": 1}, key="k")
    assert waited.value.committed is False and "committed" in vars(waited.value)

    blocker = sqlite3.connect(path, isolation_level=None)  # SQLite's own write lock
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(ConflictError) as locked:
            manager.fire("page", {"n": 1}, key="k")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert locked.value.committed is False and "committed" in vars(locked.value)

    # a write that fails inside the transaction, after the firing's kwargs were written
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON th_instances "
                         "BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
        with pytest.raises(StorageUnavailableError, match="disk says no") as failed:
            manager.fire("page", {"n": 1}, key="k")
        assert failed.value.committed is False and "committed" in vars(failed.value)
        assert manager.storage.latest_kwargs == {"start": {}}
        assert conn.execute("SELECT COUNT(*) FROM th_keys").fetchone() == (0,)
        with conn:
            conn.execute("DROP TRIGGER refuse")
    finally:
        conn.close()

    # retrying with the key is safe whatever happened before: applied now, once
    assert not manager.fire("page", {"n": 1}, key="k").repeated
    assert manager.fire("page", {"n": 1}, key="k").repeated
    assert len(manager.storage.instances_of_task("pages")) == 1


# -- the sessions of a file ----------------------------------------------------------------


def test_session_uids_lists_every_session_that_holds_anything(tmp_path: Path) -> None:
    path = tmp_path / "th.db"
    assert SqliteStorageBackend("any", path).session_uids() == []
    _manager(path, "configured").update_configuration(PAGES)
    _manager(path, "fired").fire("a", {"x": 1})
    keyed = _manager(path, "keyed")
    keyed.update_configuration(PAGES)
    keyed.fire("start")
    keyed.fire("page", key="k")
    _manager(path, "b:{odd} uid").fire("a")
    gone = _manager(path, "gone")
    gone.update_configuration(PAGES)
    gone.fire("start")
    gone.storage.clear()
    expected = ["b:{odd} uid", "configured", "fired", "keyed"]
    assert SqliteStorageBackend("any", path).session_uids() == expected
    assert gone.storage.session_uids() == expected  # any storage of the file answers
    assert SqliteStorageBackend("any", tmp_path / "other.db").session_uids() == []


# -- schema version 3 ----------------------------------------------------------------------

V2_SCHEMA = """
CREATE TABLE th_sessions (
    uid TEXT PRIMARY KEY,
    counted INTEGER NOT NULL DEFAULT 0,
    unresolved INTEGER NOT NULL DEFAULT 0,
    metadata BLOB NOT NULL DEFAULT '{}'
) WITHOUT ROWID;
CREATE TABLE th_tasks (
    uid TEXT NOT NULL, name TEXT NOT NULL, pos INTEGER NOT NULL, config BLOB NOT NULL,
    PRIMARY KEY (uid, name)
) WITHOUT ROWID;
CREATE TABLE th_index (
    uid TEXT NOT NULL, trigger TEXT NOT NULL, pos INTEGER NOT NULL, task TEXT NOT NULL,
    PRIMARY KEY (uid, trigger, pos)
) WITHOUT ROWID;
CREATE TABLE th_fired (
    uid TEXT NOT NULL, trigger TEXT NOT NULL, kwargs BLOB NOT NULL,
    PRIMARY KEY (uid, trigger)
) WITHOUT ROWID;
CREATE TABLE th_states (
    uid TEXT NOT NULL, task TEXT NOT NULL, state BLOB NOT NULL,
    PRIMARY KEY (uid, task)
) WITHOUT ROWID;
CREATE TABLE th_waiting (
    uid TEXT NOT NULL, task TEXT NOT NULL, missing INTEGER NOT NULL,
    PRIMARY KEY (uid, task)
) WITHOUT ROWID;
CREATE TABLE th_instances (
    seq INTEGER PRIMARY KEY, uid TEXT NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL,
    UNIQUE (uid, name)
);
"""
"""The tables of schema version 2, as triggerhooks 0.1 (before fire keys) created them."""


def _schema(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                        "ORDER BY name").fetchall()


def _v2_file(path: Path) -> None:
    """A file of schema 2 holding a session half way: ``t`` waits for ``b``, ``pages`` ran once.

    A new process writes the session (tables other than ``th_keys`` are as version 2 had
    them, and so is what is written to them); then the file is taken back to exactly the
    schema version 2 had, checked against :data:`V2_SCHEMA`.
    """
    code = (f"from triggerhooks import SqliteStorageBackend, TriggerManager\n"
            f"manager = TriggerManager(SqliteStorageBackend('s', {str(path)!r}))\n"
            f"manager.update_configuration({{'t': {{'after': ['a', 'b'], 'run': 'tests.echo'}},\n"
            f"                               **{PAGES!r}}})\n"
            f"manager.fire('a', {{'x': 1}})\n"
            f"manager.fire('start')\n"
            f"manager.fire('page', {{'n': 0}})\n"
            f"print('{{}}')\n")
    _in_a_new_process(code)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("DROP TABLE th_keys")
        conn.execute("DROP TABLE th_active")
        conn.execute("DROP TABLE th_first")
        # Version 2 created no instance before a task was ready.
        conn.execute("DELETE FROM th_instances WHERE name = 't#0'")
        conn.execute("DELETE FROM th_states WHERE task = 't'")
        conn.execute("PRAGMA user_version = 2")
        reference = sqlite3.connect(":memory:")
        reference.executescript(V2_SCHEMA)
        assert _schema(conn) == _schema(reference)
        reference.close()
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()


def test_a_file_of_schema_2_is_upgraded_and_its_sessions_go_on(tmp_path: Path) -> None:
    path = tmp_path / "th.db"
    _v2_file(path)
    storage = SqliteStorageBackend("s", path)  # this process has not opened the file yet
    assert storage.latest_kwargs == {"a": {"x": 1}, "start": {}, "page": {"n": 0}, "pages": {}}
    assert _rows(path, "PRAGMA user_version") == [(5,)]
    assert _rows(path, "SELECT name FROM sqlite_master WHERE name = 'th_keys'") == [("th_keys",)]
    assert [(i.name, i.status) for i in storage] == [("pages#0", "finished")]
    assert "createdAt" in storage.metadata

    manager = TriggerManager(storage)
    assert storage.instances_of_task("t") == []
    manager.fire("b", {"y": 2})  # the count of missing triggers kept in version 2 goes on
    assert storage["t#0"].metadata["result"] == {"received": {"a": {"x": 1}, "b": {"y": 2}}}
    assert manager.fire("page", {"n": 1}, key="k").scheduled == ("pages#1",)
    assert manager.fire("page", {"n": 1}, key="k").repeated
    assert storage.session_uids() == ["s"]
    storage.clear()
    assert storage.session_uids() == []


def test_a_file_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "th.db"
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA user_version = 6")
    finally:
        conn.close()
    with pytest.raises(StorageUnavailableError,
                       match=r"schema version 6 is newer than this triggerhooks understands \(5\)"):
        SqliteStorageBackend("s", path).latest_kwargs  # noqa: B018
    assert _rows(path, "PRAGMA user_version") == [(6,)]
    assert _rows(path, "SELECT name FROM sqlite_master") == []  # left as it was


def test_a_file_of_schema_3_gets_its_active_sessions_indexed(tmp_path: Path) -> None:
    """Schema 4 indexes the sessions with work scheduled or running; a file written before
    it is indexed from its task states when first opened."""
    path = tmp_path / "th.db"
    code = ("from triggerhooks import SqliteStorageBackend, TriggerManager\n"
            "from triggerhooks.testing.runners import holding_runner\n"
            "with holding_runner() as held:\n"
            f"    for uid in ('busy', 'idle'):\n"
            f"        manager = TriggerManager(SqliteStorageBackend(uid, {str(path)!r}))\n"
            "        manager.update_configuration({'t': {'after': ['a'], 'run': 'tests.echo',\n"
            "                                            'using': held.name}})\n"
            "        if uid == 'busy':\n"
            "            manager.fire('a')\n"
            "print('{}')\n")
    _in_a_new_process(code)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert conn.execute("SELECT uid, work FROM th_active").fetchall() == [("busy", 1)]
        conn.execute("DROP TABLE th_active")
        conn.execute("PRAGMA user_version = 3")
    finally:
        conn.close()
    storage = SqliteStorageBackend("idle", path)
    assert storage.active_sessions() == ["busy"]
    assert _rows(path, "PRAGMA user_version") == [(5,)]
