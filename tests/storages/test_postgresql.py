"""The PostgreSQL backend's own promises, beyond the storage contract: a commit whose reply is
lost is settled by the server; dead connections are replaced; names PostgreSQL text cannot
hold are stored; tables of another application or of a newer version are refused; writers
that wait too long for a session's lock give up cleanly; URLs, references and errors never
show a password.

Most run on the shared test server, in the run's schema; the slow ones start a server of
their own (``initdb``, ``pg_ctl``) that they stop and start again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from tests.backends import POSTGRES_URL
from tests.helpers import run_threads
from tests.pg_server import ENCODED, PASSWORD, PostgresServer, postgres_server, unavailable
from triggerhooks import (
    ConflictError,
    ForeignDatabaseError,
    InvalidSettingError,
    PostgresStorageBackend,
    StorageUnavailableError,
    TriggerManager,
    open_storage,
)
from triggerhooks.cli import cli
from triggerhooks.storages import POSTGRES_URL_ENV, STORAGE_URL_ENV, open_reference
from triggerhooks.storages.postgresql import backend, connections
from triggerhooks.storages.postgresql.schema import SCHEMA_VERSION
from triggerhooks.storages.postgresql.settings import loaded_name, lock_key, stored_name
from triggerhooks.storages.sqlite import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from triggerhooks.testing import wait_for

SECRETS = [PASSWORD, ENCODED, "s3cr"]


@pytest.fixture
def make(postgres_schema: str) -> Iterator[Any]:
    """Storages in the run's schema (``uid`` fresh unless given), cleared afterwards."""
    made: list[PostgresStorageBackend] = []

    def build(uid: str | None = None, **options: Any) -> PostgresStorageBackend:
        storage = PostgresStorageBackend(uid or f"pg-{uuid.uuid4().hex[:8]}", POSTGRES_URL,
                                         schema=postgres_schema, **options)
        made.append(storage)
        return storage

    yield build
    for storage in made:
        storage.clear()


@pytest.fixture
def scratch_schema() -> Iterator[str]:
    """A schema name of the test's own, dropped at the end."""
    schema = f"thtest_{uuid.uuid4().hex[:10]}"
    yield schema
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _sql(statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        cursor = conn.execute(statement, params or None)
        return cursor.fetchall() if cursor.description else []


# -- a lost reply ---------------------------------------------------------------------------------


def _dying(monkeypatch: pytest.MonkeyPatch, after_commit: bool) -> None:
    """The next commit's connection dies: its server process ends right after the COMMIT (so
    it was stored, only the reply is lost) or right before it (nothing was stored)."""
    real = backend.queue_writes

    def queue(conn: psycopg.Connection[Any], *args: Any) -> Any:
        counters = real(conn, *args)
        monkeypatch.setattr(backend, "queue_writes", real)  # once
        if after_commit:
            conn.execute("COMMIT")
        conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return counters

    monkeypatch.setattr(backend, "queue_writes", queue)


def test_a_commit_stored_whose_reply_was_lost_carries_on_as_if_it_had_come(
        make: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    storage = make()
    manager = TriggerManager(storage)
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.noop"}})
    _dying(monkeypatch, after_commit=True)
    with caplog.at_level(logging.WARNING, "triggerhooks"):
        manager.fire("a", {"n": 1})  # the server says it committed: no error
    assert storage["t#0"].status == "finished"  # and what followed the commit happened
    assert storage.latest_kwargs["a"] == {"n": 1}
    assert "the server says the commit was stored" in caplog.text


def test_a_connection_lost_before_the_commit_says_nothing_was_stored(
        make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = make()
    manager = TriggerManager(storage)
    manager.update_configuration({"t": {"after": ["a", "b"], "run": "tests.noop"}})
    before = storage.debug_repr()
    _dying(monkeypatch, after_commit=False)
    try:
        manager.fire("a", {"n": 1})
    except StorageUnavailableError as caught:  # the COMMIT went out on the dying connection
        assert caught.committed is False
        assert str(caught).endswith("; nothing was stored")
        assert storage.debug_repr() == before
    else:  # the connection was seen dead before the COMMIT went out: tried again on another
        assert storage.latest_kwargs == {"a": {"n": 1}}
    manager.fire("a", {"n": 2})  # a new connection
    assert storage.latest_kwargs == {"a": {"n": 2}}


def test_the_server_tells_what_became_of_a_transaction(make: Any) -> None:
    pool = make()._connections()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        with conn.transaction():
            committed = str(conn.execute("SELECT pg_current_xact_id()").fetchone()[0])
        conn.execute("BEGIN")
        aborted = str(conn.execute("SELECT pg_current_xact_id()").fetchone()[0])
        conn.execute("ROLLBACK")
        conn.execute("BEGIN")
        open_ = str(conn.execute("SELECT pg_current_xact_id()").fetchone()[0])
        assert (pool.outcome(committed), pool.outcome(aborted)) == (True, False)
        assert pool.outcome(open_) is None  # still open after the probe's time
        conn.execute("ROLLBACK")


def test_dead_pooled_connections_are_replaced_without_an_error(make: Any) -> None:
    storage = make()
    manager = TriggerManager(storage)
    manager.fire("a")
    pool = storage._connections()
    with pool.connection() as conn:
        pid = conn.info.backend_pid
    _sql("SELECT pg_terminate_backend(%s)", pid)  # as a restart of the server would
    manager.fire("b")
    assert sorted(storage.latest_kwargs) == ["a", "b"]


def test_a_writer_kept_waiting_for_the_session_gives_up_with_a_conflict(make: Any) -> None:
    storage = make(timeout=0.2)
    manager = TriggerManager(storage)
    manager.fire("a")
    with psycopg.connect(POSTGRES_URL, autocommit=True) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(storage.schema, storage.uid),))
        with pytest.raises(ConflictError) as caught:
            manager.fire("b")
        other = TriggerManager(make())  # another session never waits
        other.fire("c")
        holder.execute("ROLLBACK")
    assert caught.value.committed is False
    assert "other writers of the session held it for 0.2s" in str(caught.value)
    assert list(storage.latest_kwargs) == ["a"]
    manager.fire("b")


def test_a_client_that_stops_holding_the_session_holds_it_no_longer_than_its_timeout(
        make: Any) -> None:
    """A process frozen in the middle of a transition (here: a connection of a storage with a
    0.5 s timeout that takes the lock and says nothing more): the server ends its
    transaction after that long, and the session's other writers go on."""
    frozen = make(timeout=0.5)
    writer = make(frozen.uid, timeout=10)
    with frozen._connections().connection() as conn:
        conn.execute("BEGIN")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(frozen.schema, frozen.uid),))
        started = time.monotonic()
        TriggerManager(writer).fire("a")  # waits for the server to end the frozen transaction
        waited = time.monotonic() - started
        with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
            conn.execute("SELECT 1")
    assert 0.3 < waited < 5
    assert writer.latest_kwargs == {"a": {}}


def test_writers_of_one_session_take_turns_while_other_sessions_go_on(make: Any) -> None:
    storage = make()
    TriggerManager(storage).update_configuration({
        "every": {"after": [], "andEvery": "tick", "run": "tests.noop"}})

    def fire(number: int) -> None:
        manager = TriggerManager(PostgresStorageBackend(storage.uid, POSTGRES_URL,
                                                        schema=storage.schema))
        for k in range(15):
            manager.fire("tick", {"p": number, "k": k})

    assert run_threads(fire, range(8)) == []
    instances = storage.instances_of_task("every")
    assert sorted((i.kwargs["tick"]["p"], i.kwargs["tick"]["k"]) for i in instances) == [
        (p, k) for p in range(8) for k in range(15)]
    assert {i.status.value for i in instances} == {"finished"}
    assert storage.active_sessions() == [] or storage.uid not in storage.active_sessions()


# -- what PostgreSQL text cannot hold -----------------------------------------------------------


@pytest.mark.parametrize("name", ["a\x00b", "\x00", "\x01lead", "\x01\\0x", "back\\slash\x00"])
def test_names_holding_nul_are_stored_as_they_are(make: Any, name: str) -> None:
    assert loaded_name(stored_name(name)) == name
    storage = make(f"uid{name}")
    manager = TriggerManager(storage)
    manager.update_configuration({f"t{name}": {"after": [name], "run": "tests.echo",
                                               "unless": [f"no{name}"]}})
    manager.fire(name, {name: f"v{name}"}, key=f"key{name}")
    assert manager.fire(name, {name: f"v{name}"}, key=f"key{name}").repeated
    instance = storage[f"t{name}#0"]
    assert instance.status == "finished"
    assert instance.kwargs == {name: {name: f"v{name}"}}
    assert storage.latest_kwargs[name] == {name: f"v{name}"}
    assert storage.uid in storage.session_uids()
    assert list(storage.tasks) == [f"t{name}"]


def test_plain_names_are_stored_unchanged() -> None:
    for name in ("a", "t#0", "", "x\\0", "ü", "a\x02"):
        assert stored_name(name) == name


def test_a_schema_name_that_needs_quoting_is_used_as_it_is(scratch_schema: str) -> None:
    schema = scratch_schema + '"; DROP SCHEMA public; --'
    try:
        storage = PostgresStorageBackend("s", POSTGRES_URL, schema=schema)
        TriggerManager(storage).fire("a")
        assert storage.latest_kwargs == {"a": {}}
        assert _sql("SELECT count(*) FROM pg_namespace WHERE nspname = %s", schema) == [(1,)]
    finally:
        _sql(f'DROP SCHEMA IF EXISTS "{schema.replace(chr(34), chr(34) * 2)}" CASCADE')


# -- tables ------------------------------------------------------------------------------------------


def test_tables_are_made_on_first_use_and_migrate_says_the_version(scratch_schema: str) -> None:
    url = f"{POSTGRES_URL}?schema={scratch_schema}"
    result = CliRunner().invoke(cli, ["migrate", "--storage", url])
    assert result.exit_code == 0, result.output
    assert result.output == f"{url}: schema version {SCHEMA_VERSION}\n"
    assert _sql(f'SELECT version FROM "{scratch_schema}".th_version') == [(SCHEMA_VERSION,)]
    assert PostgresStorageBackend("s", url).migrate() == SCHEMA_VERSION  # again: nothing to do
    assert _sql(f'SELECT count(*) FROM "{scratch_schema}".th_version') == [(1,)]


def test_migrate_on_stores_without_tables_says_so(tmp_path: Any) -> None:
    runner = CliRunner()
    for url in ("memory://", "redis://127.0.0.1:6379/0"):
        result = runner.invoke(cli, ["migrate", "--storage", url])
        assert result.output == f"{url}: nothing to migrate (this storage has no tables)\n"
    result = runner.invoke(cli, ["--storage", f"sqlite:///{tmp_path}/x.sqlite3", "migrate"])
    assert result.exit_code == 0 and result.output.endswith(
        f": schema version {SQLITE_SCHEMA_VERSION}\n")


def test_tables_of_a_newer_version_are_refused(scratch_schema: str) -> None:
    PostgresStorageBackend("s", POSTGRES_URL, schema=scratch_schema).migrate()
    _sql(f'UPDATE "{scratch_schema}".th_version SET version = %s', SCHEMA_VERSION + 1)
    connections.pools.clear()  # as a new process: the tables are checked again
    with pytest.raises(StorageUnavailableError, match=(
            f"holds triggerhooks tables of schema version {SCHEMA_VERSION + 1}, newer than "
            f"this triggerhooks understands \\({SCHEMA_VERSION}\\)")) as caught:
        TriggerManager(PostgresStorageBackend("s", POSTGRES_URL, schema=scratch_schema)).fire("a")
    assert caught.value.committed is False


def test_tables_of_schema_1_are_upgraded_and_their_sessions_go_on(scratch_schema: str) -> None:
    """Schema 2 added ``th_first``: a session stored before it goes on; its waiting
    instance shows the latest firing of a trigger fired before the upgrade."""
    storage = PostgresStorageBackend("s", POSTGRES_URL, schema=scratch_schema)
    manager = TriggerManager(storage)
    manager.update_configuration({"t": {"after": ["a", "b", "c"], "run": "tests.echo"}})
    manager.fire("a", {"n": 1})
    manager.fire("b", {"n": 2})
    _sql(f'DROP TABLE "{scratch_schema}".th_first')
    _sql(f'UPDATE "{scratch_schema}".th_version SET version = 1')
    connections.pools.clear()  # as a new process: the tables are checked again
    again = PostgresStorageBackend("s", POSTGRES_URL, schema=scratch_schema)
    assert again["t#0"].kwargs == {"a": {"n": 1}, "b": {"n": 2}}
    assert _sql(f'SELECT version FROM "{scratch_schema}".th_version') == [(SCHEMA_VERSION,)]
    TriggerManager(again).fire("c", {"n": 3})
    assert again["t#0"].status == "finished"
    assert again["t#0"].kwargs == {"a": {"n": 1}, "b": {"n": 2}, "c": {"n": 3}}


def test_tables_of_another_application_are_refused_and_left_alone(scratch_schema: str) -> None:
    _sql(f'CREATE SCHEMA "{scratch_schema}"')
    _sql(f'CREATE TABLE "{scratch_schema}".th_tasks (id int)')
    with pytest.raises(ForeignDatabaseError, match="th_tasks"):
        PostgresStorageBackend("s", POSTGRES_URL, schema=scratch_schema).latest_kwargs  # noqa: B018
    assert _sql("SELECT tablename FROM pg_tables WHERE schemaname = %s", scratch_schema) == [
        ("th_tasks",)]


def test_without_psycopg_the_storage_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connections, "_missing", ImportError("No module named 'psycopg'"))
    with pytest.raises(StorageUnavailableError, match=r'pip install "triggerhooks\[postgres\]"'):
        open_storage("postgresql://127.0.0.1/test", "s")


# -- URLs and passwords --------------------------------------------------------------------------------

HOSTILE = [f"postgresql://ada:{ENCODED}@db:5432/app", f"postgres://db/app?password={ENCODED}",
           f"postgresql+psycopg://ada:{ENCODED}@db/app?sslpassword={ENCODED}&schema=x"]


@pytest.mark.parametrize("url", HOSTILE)
def test_a_storage_shows_no_password_and_references_none(url: str) -> None:
    storage = open_storage(url, "s")
    reference = storage.reference()
    assert reference["secretWithheld"] is True
    for shown in (repr(storage), json.dumps(reference)):
        assert all(secret not in shown for secret in SECRETS), shown
    assert "***" in repr(storage)


@pytest.mark.parametrize(("option", "problem"), [
    ("timeout=nan", "timeout must be"), ("timeout=0", "timeout must be"),
    ("pool_size=0", "pool_size must be"), ("pool_size=1.5", "pool_size must be"),
    ("pool_timeout=-1", "pool_timeout must be"), ("schema=" + "x" * 64, "longer than 63 bytes"),
    ("schema=", "schema must be"), ("schema=a%00b", "NUL")])
def test_options_that_make_no_sense_are_refused_naming_them(option: str, problem: str) -> None:
    with pytest.raises(InvalidSettingError, match=problem) as caught:
        open_storage(f"postgresql://u:{ENCODED}@h/db?{option}", "s")
    assert all(secret not in str(caught.value) for secret in SECRETS)


def test_a_password_written_unescaped_is_refused_without_showing_it() -> None:
    with pytest.raises(InvalidSettingError, match="percent-encode") as caught:
        PostgresStorageBackend("s", "postgresql://u:p4ss/w0rd@h/db")
    assert "p4ss" not in str(caught.value) and "w0rd" not in str(caught.value)


def test_a_worker_completes_a_reference_from_its_own_url(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Any) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    monkeypatch.delenv(POSTGRES_URL_ENV, raising=False)
    monkeypatch.delenv(STORAGE_URL_ENV, raising=False)
    url = f"postgresql://ada:{ENCODED}@worker-db.invalid:5432/app"
    reference = PostgresStorageBackend("s", url, schema="x").reference()
    with pytest.raises(StorageUnavailableError, match="leaves its password out") as caught:
        open_reference(reference)
    assert all(secret not in str(caught.value) for secret in SECRETS)
    monkeypatch.setenv(STORAGE_URL_ENV, f"{url}?schema=other")
    rebuilt = open_reference(reference)
    assert isinstance(rebuilt, PostgresStorageBackend)
    assert (rebuilt.url, rebuilt.schema) == (url, "x")
    monkeypatch.delenv(STORAGE_URL_ENV)
    monkeypatch.setenv("PGPASSWORD", "from-libpq")  # libpq finds a password of its own
    assert open_reference(reference).url == "postgresql://ada@worker-db.invalid:5432/app"


# -- a server of the test's own --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    with postgres_server() as made:
        yield made


@pytest.mark.slow
def test_a_killed_server_leaves_every_fire_whole_or_raised_and_nothing_stuck(
        server: PostgresServer) -> None:
    storage = PostgresStorageBackend("faulty", server.url, pool_timeout=1)
    manager = TriggerManager(storage, claim_grace_seconds=0.2, lease_seconds=1)
    manager.update_configuration({
        "ticks": {"after": ["never"], "andEvery": "tick", "run": "tests.noop"},
        "done": {"after": ["tick"], "run": "tests.noop"},
        "vetoed": {"after": ["never"], "unless": ["tick"], "run": "tests.noop"},
        "each": {"after": [], "andEvery": "tock", "run": "tests.noop"},
    })
    stored: list[int] = []
    failed: dict[int, bool | None] = {}  # what each failed fire said of its change
    restarted = threading.Event()

    def kill_and_restart() -> None:
        wait_for(lambda: len(stored) >= 60, timeout=60, message="fires before the kill")
        server.kill()
        wait_for(lambda: failed, timeout=60, message="a fire to fail while the server is down")
        server.start()
        restarted.set()

    killer = threading.Thread(target=kill_and_restart)
    killer.start()
    number = after_restart = 0
    try:
        def refused(exc: StorageUnavailableError) -> None:
            message = str(exc)
            assert message.startswith(f"PostgreSQL at postgresql://postgres:***@127.0.0.1:"
                                      f"{server.port}/postgres")
            assert all(secret not in message for secret in SECRETS), message

        while after_restart < 60:
            try:  # (what a failed fire said of its change is kept for the tick alone)
                manager.fire("tick", {"n": number})
            except StorageUnavailableError as exc:
                refused(exc)
                failed[number] = exc.committed
            else:
                stored.append(number)
                after_restart += restarted.is_set()
            try:
                manager.fire("tock", {"n": number})
            except StorageUnavailableError as exc:
                refused(exc)
            number += 1
            assert number < 100_000
    finally:
        killer.join(timeout=120)

    states = storage._load_states()
    ticks = storage.instances_of_task("ticks")
    assert len(ticks) == states["ticks"].next  # no instance counted but missing
    numbers = [i.kwargs["tick"]["n"] for i in ticks]
    assert len(numbers) == len(set(numbers)) and numbers == sorted(numbers)  # none twice
    assert set(stored) <= set(numbers) <= set(stored) | set(failed)
    assert not {n for n, said in failed.items() if said is False} & set(numbers)
    assert storage.latest_kwargs["tick"] == {"n": numbers[-1]}
    assert [(i.name, i.status) for i in storage.instances_of_task("vetoed")] == [
        ("vetoed#0", "abandoned")]
    assert [(i.name, i.status) for i in storage.instances_of_task("done")] == [
        ("done#0", "finished")]

    def recovered() -> bool:
        """A tock cut off after its commit left its instance scheduled, or running with a
        lease that runs out: recoveries run it (once)."""
        manager.recover()
        return {i.status.value for i in storage.instances_of_task("each")} == {"finished"}

    wait_for(recovered, 30, "recoveries to leave nothing scheduled or running")
    assert manager.stuck() == [] and storage.active_sessions() == []


@pytest.mark.slow
def test_a_server_that_is_down_is_named_without_its_password_and_used_once_back(
        server: PostgresServer) -> None:
    storage = PostgresStorageBackend("down", server.url, pool_timeout=1)
    manager = TriggerManager(storage)
    manager.fire("a")
    server.kill()
    try:
        with pytest.raises(StorageUnavailableError) as caught:
            manager.fire("b")
        assert str(caught.value).startswith(
            f"PostgreSQL at postgresql://postgres:***@127.0.0.1:{server.port}/postgres "
            "is unavailable: ")
        assert caught.value.committed is False
        assert all(secret not in str(caught.value) for secret in SECRETS)
        result = CliRunner().invoke(cli, ["--storage", server.url, "fire", "down", "x"])
        assert result.exit_code == 1 and result.output.startswith("error: PostgreSQL at ")
        assert all(secret not in result.output for secret in SECRETS), result.output
    finally:
        server.start()
    manager.fire("c")
    assert storage.latest_kwargs == {"a": {}, "c": {}}


@pytest.mark.slow
def test_a_wrong_password_is_an_error_without_it(server: PostgresServer) -> None:
    url = server.url.replace(ENCODED, "wr0ng-" + ENCODED)
    with pytest.raises(StorageUnavailableError) as caught:
        TriggerManager(PostgresStorageBackend("s", url, pool_timeout=1)).fire("a")
    assert "password authentication failed" in str(caught.value)
    assert "wr0ng" not in str(caught.value)
    assert all(secret not in str(caught.value) for secret in SECRETS)


# -- processes and pools ---------------------------------------------------------------------------


def test_a_forked_child_uses_connections_of_its_own(make: Any) -> None:
    storage = make()
    manager = TriggerManager(storage)
    manager.fire("parent")
    pid = os.fork()
    if pid == 0:  # the child: the same storage object, the parent's pool is not its own
        code = 1
        try:
            manager.fire("child")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    manager.fire("parent again")  # the parent's connections still work
    assert sorted(storage.latest_kwargs) == ["child", "parent", "parent again"]


def test_pools_making_the_tables_of_one_schema_at_once_make_them_once(
        scratch_schema: str) -> None:
    """Each timeout makes a pool of its own, and each pool makes the tables on first use:
    the migrations take turns (an advisory lock), none fails."""
    barrier = threading.Barrier(6)

    def fire(number: int) -> None:
        storage = PostgresStorageBackend(f"s{number}", POSTGRES_URL, schema=scratch_schema,
                                         timeout=10 + number)
        barrier.wait(30)
        TriggerManager(storage).fire("a")

    assert run_threads(fire, range(6)) == []
    storage = PostgresStorageBackend("s0", POSTGRES_URL, schema=scratch_schema)
    assert storage.session_uids() == [f"s{n}" for n in range(6)]
    assert _sql(f'SELECT version FROM "{scratch_schema}".th_version') == [(SCHEMA_VERSION,)]
