"""Sessions in one SQLite file, shared by every thread and process on one machine.

Each transition is one ``BEGIN IMMEDIATE`` transaction: SQLite's write lock
serializes writers across processes (WAL mode lets readers go on meanwhile),
the engine computes the change against live rows inside it, and the commit
writes only what changed. Writers queue on a lock file beside the database
first (:class:`_WriterTurn`): SQLite's own busy handler sleeps up to 100 ms
between tries, which under many writers is what a fire would mostly wait for.
Nothing but the standard library.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import sqlite3
import struct
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from ..core.types import (
    Changes,
    Commit,
    Compute,
    Plan,
    SessionView,
    TaskState,
    build_index,
    first_record,
)
from ..exceptions import (
    ConflictError,
    ForeignDatabaseError,
    InvalidSettingError,
    StorageUnavailableError,
    mark_committed,
)
from ..models import SESSION_FINALIZED, TaskConfig, TaskInstance, name_problem, stored_config
from ..serialization import JsonDict, dumps, loads, safe_text
from .base import StorageBackend, after_prefix, check_page, sorted_page

__all__ = ["SQLITE_PATH_ENV", "SqliteStorageBackend", "split_sqlite_url", "sqlite_file"]

SQLITE_PATH_ENV = "TRIGGERHOOKS_SQLITE_PATH"
DEFAULT_SQLITE_PATH = "triggerhooks.sqlite3"
SCHEMA_VERSION = 5
"""1: the first tables; 2: ``th_waiting`` (counts of missing triggers); 3: ``th_keys`` (fire
keys); 4: ``th_active`` (sessions with work); 5: ``th_first`` (first firings). Every
change so far only added tables, so ``_SCHEMA`` (``CREATE TABLE IF NOT
EXISTS``) upgrades an older file in place; a newer file is refused."""

WAL_CHECKPOINT_PAGES = 1000
"""Log pages (SQLite's own default threshold) past which a commit wakes the checkpointing
thread (see :class:`_Checkpointer`)."""
WAL_BACKSTOP_PAGES = 8000
"""Log pages past which the committing writer checkpoints itself (SQLite's automatic
checkpoint), only if the checkpointing thread fell behind."""
_U32 = struct.Struct("=I")

T = TypeVar("T")


def sqlite_file(path: str | os.PathLike[str] | None = None) -> str:
    """The absolute file a SQLite storage uses: ``path``, else ``$TRIGGERHOOKS_SQLITE_PATH``,
    else ``triggerhooks.sqlite3`` in the working directory."""
    raw = os.fspath(path) if path is not None else (
        os.environ.get(SQLITE_PATH_ENV) or DEFAULT_SQLITE_PATH)
    if raw in ("", ":memory:") or raw.startswith("file:"):
        raise InvalidSettingError(f"SqliteStorageBackend needs a file path, not {raw!r} "
                                  "(use MemoryStorageBackend for in-process sessions)")
    problem = "contains a NUL character" if "\0" in raw else name_problem(raw)
    if problem:
        raise InvalidSettingError(f"SQLite path {safe_text(raw)!r} {problem}")
    return os.path.abspath(os.path.expanduser(raw))


MAX_TIMEOUT = 86400.0
"""The longest a writer may be told to wait for its turn, in seconds (a day)."""


def _timeout(value: Any, where: str = "") -> float:
    """``value`` as a writer's timeout: a number of seconds, 0 up to :data:`MAX_TIMEOUT`."""
    try:
        seconds = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not 0 <= seconds <= MAX_TIMEOUT:
        raise InvalidSettingError(f"timeout must be a number of seconds from 0 to "
                                  f"{MAX_TIMEOUT:g}, not {value!r}{where}")
    return seconds


def split_sqlite_url(url: str) -> tuple[str | None, str]:
    """The path (``None``: the default file) and the query of a ``sqlite://`` URL:
    ``sqlite:///relative/path``, ``sqlite:////absolute/path``."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite" or parts.netloc:
        raise InvalidSettingError(f"not a SQLite URL: {url!r} (expected sqlite:///path/to/file"
                                  f"{_meant_file(parts.netloc, parts.path)})")
    return unquote(parts.path[1:]) or None, parts.query


def _meant_file(host: str, path: str) -> str:
    """For ``sqlite://data/x.db`` (two slashes, so ``data`` reads as a host): the absolute
    file that ``sqlite:///data/x.db`` would use, since a relative path depends on the working
    directory. Nothing for a host with user-info, which may hold a password."""
    if not host or "@" in host:
        return ""
    try:
        meant = sqlite_file(unquote(host + path))
    except ValueError:
        return ""
    return f"; did you mean sqlite:///{unquote(host + path)}, the file {meant}?"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS th_sessions (
    uid TEXT PRIMARY KEY,
    counted INTEGER NOT NULL DEFAULT 0,
    unresolved INTEGER NOT NULL DEFAULT 0,
    metadata BLOB NOT NULL DEFAULT '{}'
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS th_tasks (
    uid TEXT NOT NULL, name TEXT NOT NULL, pos INTEGER NOT NULL, config BLOB NOT NULL,
    PRIMARY KEY (uid, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS th_index (
    uid TEXT NOT NULL, trigger TEXT NOT NULL, pos INTEGER NOT NULL, task TEXT NOT NULL,
    PRIMARY KEY (uid, trigger, pos)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS th_fired (
    uid TEXT NOT NULL, trigger TEXT NOT NULL, kwargs BLOB NOT NULL,
    PRIMARY KEY (uid, trigger)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS th_states (
    uid TEXT NOT NULL, task TEXT NOT NULL, state BLOB NOT NULL,
    PRIMARY KEY (uid, task)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS th_waiting (
    uid TEXT NOT NULL, task TEXT NOT NULL, missing INTEGER NOT NULL,
    PRIMARY KEY (uid, task)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS th_instances (
    seq INTEGER PRIMARY KEY, uid TEXT NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL,
    UNIQUE (uid, name)
);
CREATE TABLE IF NOT EXISTS th_keys (
    uid TEXT NOT NULL, key TEXT NOT NULL, record BLOB NOT NULL,
    PRIMARY KEY (uid, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS th_first (
    uid TEXT NOT NULL, trigger TEXT NOT NULL, record BLOB NOT NULL,
    PRIMARY KEY (uid, trigger)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS th_active (
    uid TEXT PRIMARY KEY, work INTEGER NOT NULL
) WITHOUT ROWID;
"""

_TABLES = ("th_sessions", "th_tasks", "th_index", "th_fired", "th_states", "th_waiting",
           "th_instances", "th_keys", "th_active", "th_first")
"""Every table, each keyed by the session's uid."""

_PAGE = """
WITH RECURSIVE seen(uid, n) AS (
    SELECT (SELECT MIN(uid) FROM {table} WHERE uid {op} :start), 1
    UNION ALL
    SELECT (SELECT MIN(uid) FROM {table} WHERE uid > seen.uid), n + 1 FROM seen
    WHERE seen.uid IS NOT NULL AND n < :limit AND (:end = '' OR seen.uid < :end))
SELECT uid FROM seen WHERE uid IS NOT NULL AND (:end = '' OR uid < :end)
"""
"""The first uids of a table from ``:start`` on (``op``: ``>=``, or ``>`` after it) up to
``:end`` (none for ``''``), at most ``:limit``: one index lookup each, stopping at the
first uid past the end. The range is compared as SQLite compares text (its bytes), so a
uid holding a NUL is found too (SQLite's text functions stop at a NUL)."""

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_CHUNK = 500  # names per "IN (...)" query, well under SQLite's variable limit


def _index_active(conn: sqlite3.Connection) -> None:
    """Fill ``th_active`` (schema 4) from the task states of a file written before it."""
    work: dict[str, int] = {}
    for uid, raw in conn.execute("SELECT uid, state FROM th_states"):
        count = TaskState.from_json(loads(raw)).work
        if count:
            work[uid] = work.get(uid, 0) + count
    conn.executemany("INSERT OR REPLACE INTO th_active (uid, work) VALUES (?, ?)", work.items())


def _check_ours(conn: sqlite3.Connection, path: str) -> None:
    """Refuse (:class:`ForeignDatabaseError`, before anything is written) a file that holds
    anything but triggerhooks's tables (tables, indexes, views, triggers of its own) or
    carries an ``application_id``: another application's database is never changed (no
    table added, no switch to WAL, no ``user_version`` set)."""
    foreign = sorted(f"{kind} {name}" for kind, name in conn.execute(
        "SELECT type, name FROM sqlite_master WHERE substr(name, 1, 7) != 'sqlite_'")
        if not (kind == "table" and name in _TABLES))
    application = conn.execute("PRAGMA application_id").fetchone()[0]
    if application:
        foreign.insert(0, f"application_id {application}")
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ForeignDatabaseError(
            f"SQLite database {path} belongs to another application (it holds {shown}, which "
            "are not triggerhooks's): triggerhooks left it unchanged; give it a file of its own "
            f"(a path of its own, or ${SQLITE_PATH_ENV})")


class _View(SessionView):
    """Live rows of one session, read inside the transaction's write lock (memoized)."""

    def __init__(self, conn: sqlite3.Connection, uid: str) -> None:
        self.conn = conn
        self.uid = uid
        self._configs: dict[str, TaskConfig | None] = {}
        self._states: dict[str, TaskState] = {}
        self._kwargs: dict[str, bytes | None] = {}
        self._missing: dict[str, int | None] = {}

    def _row(self, memo: dict[str, T], sql: str, key: str, convert: Callable[[Any], T]) -> T:
        """``memo[key]``, else ``convert`` of the one value ``sql`` selects by uid and key
        (``None`` for no row), remembered."""
        try:
            return memo[key]
        except KeyError:
            row = self.conn.execute(sql, (self.uid, key)).fetchone()
            found = memo[key] = convert(None if row is None else row[0])
            return found

    def task(self, name: str) -> TaskConfig | None:
        return self._row(self._configs, "SELECT config FROM th_tasks WHERE uid = ? AND name = ?",
                         name, lambda raw: None if raw is None else stored_config(name, raw))

    def tasks_for(self, trigger: str) -> Sequence[TaskConfig]:
        rows = self.conn.execute(
            "SELECT t.name, t.config FROM th_index i JOIN th_tasks t "
            "ON t.uid = i.uid AND t.name = i.task WHERE i.uid = ? AND i.trigger = ? ORDER BY i.pos",
            (self.uid, trigger)).fetchall()
        found = []
        for name, raw in rows:
            config = self._configs.get(name)
            if config is None:
                config = self._configs[name] = stored_config(name, raw)
            found.append(config)
        return found

    def all_tasks(self) -> Mapping[str, TaskConfig]:
        rows = self.conn.execute("SELECT name, config FROM th_tasks WHERE uid = ? ORDER BY pos",
                                 (self.uid,)).fetchall()
        configs = {name: stored_config(name, raw) for name, raw in rows}
        self._configs.update(configs)
        return configs

    def fired(self, trigger: str) -> bool:
        return self.kwargs(trigger) is not None

    def kwargs(self, trigger: str) -> bytes | None:
        return self._row(self._kwargs, "SELECT kwargs FROM th_fired WHERE uid = ? AND trigger = ?",
                         trigger, lambda raw: None if raw is None else bytes(raw))

    def first(self, trigger: str) -> bytes | None:
        row = self.conn.execute("SELECT record FROM th_first WHERE uid = ? AND trigger = ?",
                                (self.uid, trigger)).fetchone()
        return None if row is None else bytes(row[0])

    def state(self, task: str) -> TaskState:
        return self._row(self._states, "SELECT state FROM th_states WHERE uid = ? AND task = ?",
                         task, lambda raw: TaskState() if raw is None else TaskState.from_json(loads(raw)))

    def missing(self, task: str) -> int | None:
        return self._row(self._missing, "SELECT missing FROM th_waiting WHERE uid = ? AND task = ?",
                         task, lambda raw: None if raw is None else int(raw))

    def fire_record(self, key: str) -> bytes | None:
        row = self.conn.execute("SELECT record FROM th_keys WHERE uid = ? AND key = ?",
                                (self.uid, key)).fetchone()
        return None if row is None else bytes(row[0])

    def instance(self, name: str) -> TaskInstance | None:
        row = self.conn.execute("SELECT data FROM th_instances WHERE uid = ? AND name = ?",
                                (self.uid, name)).fetchone()
        return None if row is None else TaskInstance.from_json(name, loads(row[0]))


class _WriterTurn:
    """One connection's place among the writers of a database file: writers take turns on
    ``<file>-writers`` (``flock``), each connection with a descriptor of its own.

    A writer that finds the lock taken waits for it in the kernel, which wakes it the
    moment the lock is free; a process that dies gives its turn up.
    """

    def __init__(self, path: str) -> None:
        self.path = path + "-writers"
        self.fd: int | None = None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    @contextmanager
    def taken(self, timeout: float) -> Iterator[None]:
        fd = self.fd
        if fd is None:
            fd = self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._wait(fd, timeout)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _wait(self, fd: int, timeout: float) -> None:
        """Wait for the lock on a thread of its own, so that the wait can end at ``timeout``;
        a lock that thread gets after that is given back at once (with its descriptor)."""
        guard = threading.Lock()
        got = threading.Event()
        gave_up = False

        def wait() -> None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with guard:
                if not gave_up:
                    got.set()
                    return
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

        threading.Thread(target=wait, name="triggerhooks SQLite writer's turn", daemon=True).start()
        if got.wait(timeout):
            return
        with guard:
            if got.is_set():
                return
            gave_up = True
        self.fd = None  # the waiting thread still uses it, and closes it
        raise sqlite3.OperationalError("database is locked")


class _Checkpointer:
    """Copies the write-ahead log back into the database on a thread of its own.

    SQLite's automatic checkpoint runs inside the commit that crosses its threshold,
    under the writers' turn: every writer would wait for its page copies and fsyncs.
    Here a writer that finds :data:`WAL_CHECKPOINT_PAGES` pages of the log not yet
    copied, after its turn, wakes a thread that runs a ``PASSIVE`` checkpoint (which
    waits for no one, and no one for it) on a connection of its own; the automatic one
    stays as a backstop at :data:`WAL_BACKSTOP_PAGES`, should that thread fall behind.
    """

    def __init__(self, path: str, timeout: float) -> None:
        self.shm = path + "-shm"
        self.path = path
        self.timeout = timeout
        self._fd: int | None = None
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def pending(self) -> int:
        """Pages of the log not copied into the database yet, read from the wal-index
        header (SQLite's documented file format: ``mxFrame`` at byte 16, ``nBackfill`` at
        byte 96, native byte order); 0 when it cannot be read."""
        try:
            if self._fd is None:
                self._fd = os.open(self.shm, os.O_RDONLY)
            header = os.pread(self._fd, 100, 0)
        except OSError:
            return 0
        if len(header) < 100:
            return 0
        frames: int = _U32.unpack_from(header, 16)[0]
        copied: int = _U32.unpack_from(header, 96)[0]
        return frames - min(copied, frames)

    def nudge(self) -> None:
        """After a commit: wake the checkpointing thread if enough of the log is pending."""
        if self._wake.is_set() or self.pending() < WAL_CHECKPOINT_PAGES:
            return
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="triggerhooks SQLite checkpoints", daemon=True)
                    self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                               check_same_thread=False)
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()


class _Pool:
    """Idle connections to one database file, for this process; any thread may take one."""

    def __init__(self, path: str, timeout: float, synchronous: str) -> None:
        self.path = path
        self.timeout = timeout
        self.synchronous = synchronous
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._ready = False
        self._turns: dict[int, _WriterTurn] = {}
        """id of a connection -> its place among the writers (see :class:`_WriterTurn`)."""
        self.checkpoints = _Checkpointer(path, timeout)

    def turn(self, conn: sqlite3.Connection) -> _WriterTurn:
        found = self._turns.get(id(conn))
        if found is None:
            with self._lock:
                found = self._turns.setdefault(id(conn), _WriterTurn(self.path))
        return found

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                               check_same_thread=False, cached_statements=256)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            if not self._ready:
                self._prepare(conn)
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_BACKSTOP_PAGES}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Check that the file is triggerhooks's (or empty), switch it to WAL and create the
        tables, once per process."""
        with self._lock:
            if self._ready:
                return
            _check_ours(conn, self.path)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot switch to WAL journal mode (got {mode!r})")
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise sqlite3.DatabaseError(
                        f"schema version {version} is newer than this triggerhooks "
                        f"understands ({SCHEMA_VERSION})")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                if version < 4:
                    _index_active(conn)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._ready = True

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    conn.close()
                    with self._lock:
                        turn = self._turns.pop(id(conn), None)
                    if turn is not None:
                        turn.close()
                    raise
            self._release(conn)
            raise
        self._release(conn)

    def _release(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            self._idle.append(conn)


_pools: dict[tuple[int, str, float, str], _Pool] = {}
_pools_lock = threading.Lock()


def _pool(path: str, timeout: float, synchronous: str) -> _Pool:
    key = (os.getpid(), path, timeout, synchronous)
    found = _pools.get(key)
    if found is None:
        with _pools_lock:
            found = _pools.setdefault(key, _Pool(path, timeout, synchronous))
    return found


class SqliteStorageBackend(StorageBackend):
    """Sessions in one SQLite file: durable, shared by threads and processes on one machine.

    ``path`` defaults to ``$TRIGGERHOOKS_SQLITE_PATH``, else ``triggerhooks.sqlite3``
    in the working directory (made absolute at once). ``timeout`` is how long
    a writer waits for another to finish; ``synchronous`` is SQLite's
    durability setting (``NORMAL``: a commit survives a crash of the process,
    ``FULL``: also of the machine, at the cost of an fsync per commit).
    """

    name = "sqlite"
    url_schemes: ClassVar[tuple[str, ...]] = ("sqlite",)
    supports_fire_keys: ClassVar[bool] = True

    def __init__(self, uid: str, path: str | os.PathLike[str] | None = None, *,
                 timeout: float = 30.0, synchronous: str = "NORMAL") -> None:
        super().__init__(uid)
        self.path = sqlite_file(path)
        sync = synchronous.upper() if isinstance(synchronous, str) else synchronous
        if sync not in _SYNCHRONOUS:
            raise InvalidSettingError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, "
                                      f"not {synchronous!r}")
        self.timeout = _timeout(timeout)
        self.synchronous = sync

    # -- construction ------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, uid: str, **options: Any) -> SqliteStorageBackend:
        """``sqlite:///relative/path``, ``sqlite:////absolute/path``; ``sqlite://`` alone
        uses the default path. Query options: ``timeout``, ``synchronous``."""
        path, query = split_sqlite_url(url)
        try:
            pairs = parse_qsl(query, strict_parsing=bool(query))
        except ValueError:
            raise InvalidSettingError(f"SQLite URL {url!r}: its query is not "
                                      "name=value pairs joined by '&'") from None
        for key, value in pairs:
            if key == "timeout":
                options.setdefault("timeout", _timeout(value, f" (?timeout= in URL {url!r})"))
            elif key == "synchronous":
                options.setdefault("synchronous", value)
            else:
                raise InvalidSettingError(f"unknown option {key!r} in SQLite URL {url!r}; "
                                          "known: timeout, synchronous")
        return cls(uid, path, **options)

    def reference(self) -> JsonDict:
        return {"backend": self.name, "uid": self.uid, "path": self.path,
                "timeout": self.timeout, "synchronous": self.synchronous}

    @classmethod
    def from_reference(cls, reference: JsonDict) -> SqliteStorageBackend:
        return cls(reference["uid"], reference.get("path"),
                   timeout=reference.get("timeout", 30.0),
                   synchronous=reference.get("synchronous", "NORMAL"))

    # -- connections and errors ----------------------------------------------------------

    def _unavailable(self, exc: sqlite3.Error) -> StorageUnavailableError:
        message = str(exc)
        if "locked" in message or "busy" in message:
            return ConflictError(f"SQLite database {self.path} stayed locked by other writers "
                                 f"for {self.timeout:g}s: {message}")
        return StorageUnavailableError(f"SQLite database {self.path} is unusable: {message}")

    @contextmanager
    def _connection(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A pooled connection; with ``write``, once it is this writer's turn."""
        try:
            pool = _pool(self.path, self.timeout, self.synchronous)
            with pool.connection() as conn:
                if not write:
                    yield conn
                    return
                with pool.turn(conn).taken(self.timeout):
                    yield conn
            pool.checkpoints.nudge()
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        except OSError as exc:  # the writers' lock file
            raise StorageUnavailableError(
                f"SQLite database {self.path} is unusable: {exc}") from exc

    def migrate(self) -> int:
        """Create the file's tables, or upgrade them (see ``SCHEMA_VERSION``); return the
        schema version. Done on first use too."""
        with self._connection():
            return SCHEMA_VERSION

    # -- transitions -----------------------------------------------------------------------

    def transact(self, plan: Plan, compute: Compute) -> Commit:
        """Compute and write in one ``BEGIN IMMEDIATE`` transaction, on this writer's turn.

        The whole transition holds SQLite's write lock, so a keyed firing sees every
        key committed before it: a key fired by many processes at once is applied once.
        """
        changes: Changes | None = None
        try:
            with self._connection(write=True) as conn:
                conn.execute("BEGIN IMMEDIATE")
                view = _View(conn, self.uid)
                found = compute(view)
                counted, unresolved, finalized = self._write(conn, view, found)
                conn.execute("COMMIT")
                changes = found
        except StorageUnavailableError as exc:
            if changes is None:
                # Up to and including COMMIT, SQLite stores a transaction whole or not at
                # all: a failed statement or COMMIT leaves it rolled back (by SQLite, or by
                # the pool on the way out), so nothing of this transition was stored.
                exc.committed = False
            else:  # giving the writers' turn back failed, after the commit
                mark_committed(exc, [instance.name for instance, _, _ in changes.schedule])
            raise
        return Commit(changes, unresolved, counted, finalized)

    def _write(self, conn: sqlite3.Connection, view: _View,
               changes: Changes) -> tuple[int, int, bool]:
        """Write ``changes`` (encoded first, so a value that cannot be stored writes nothing)
        and return the session's counters after them."""
        uid = self.uid
        instances = [(uid, name, dumps(inst.to_json(), f"instance {name}"))
                     for name, inst in changes.instances.items()]
        work = sum(state.work - view.state(task).work for task, state in changes.states.items())
        states = [(uid, task, orjson.dumps(state.to_json()))
                  for task, state in changes.states.items()]
        if changes.fired:
            conn.executemany(
                "INSERT INTO th_fired (uid, trigger, kwargs) VALUES (?, ?, ?) "
                "ON CONFLICT (uid, trigger) DO UPDATE SET kwargs = excluded.kwargs",
                [(uid, trigger, raw) for trigger, raw in changes.fired.items()])
            if changes.new_triggers:
                conn.executemany(
                    "INSERT OR IGNORE INTO th_first (uid, trigger, record) VALUES (?, ?, ?)",
                    [(uid, trigger, first_record(changes.at, changes.fired[trigger]))
                     for trigger in changes.new_triggers])
        if instances:
            conn.executemany(
                "INSERT INTO th_instances (uid, name, data) VALUES (?, ?, ?) "
                "ON CONFLICT (uid, name) DO UPDATE SET data = excluded.data", instances)
        if states:
            conn.executemany(
                "INSERT INTO th_states (uid, task, state) VALUES (?, ?, ?) "
                "ON CONFLICT (uid, task) DO UPDATE SET state = excluded.state", states)
        if changes.configs is not None:
            self._write_configs(conn, changes.configs, changes.missing or {})
        if changes.first_fired:
            conn.executemany(
                "UPDATE th_waiting SET missing = missing - ? WHERE uid = ? AND task = ?",
                [(count, uid, task) for task, count in changes.first_fired.items()])
        if changes.fire_key is not None:
            # A plain INSERT: the view found no record of the key under this same write
            # lock, and a record that appeared meanwhile would fail the whole commit.
            conn.execute("INSERT INTO th_keys (uid, key, record) VALUES (?, ?, ?)",
                         (uid, *changes.fire_key))
        if work:
            self._index_work(conn, work)
        return self._count(conn, changes)

    def _index_work(self, conn: sqlite3.Connection, delta: int) -> None:
        """Keep the session's count of scheduled and running instances in ``th_active``,
        the index of the sessions a sweeper recovers."""
        conn.execute("INSERT INTO th_active (uid, work) VALUES (?1, ?2) "
                     "ON CONFLICT (uid) DO UPDATE SET work = work + ?2", (self.uid, delta))
        if delta < 0:
            conn.execute("DELETE FROM th_active WHERE uid = ? AND work <= 0", (self.uid,))

    def _count(self, conn: sqlite3.Connection, changes: Changes) -> tuple[int, int, bool]:
        """Write the session's counters and metadata that ``changes`` set, and return the
        counters after them."""
        uid = self.uid
        row = conn.execute(
            "SELECT (SELECT counted FROM th_sessions WHERE uid = ?1), "
            "(SELECT unresolved FROM th_sessions WHERE uid = ?1), "
            "EXISTS (SELECT 1 FROM th_fired WHERE uid = ?1 AND trigger = ?2)",
            (uid, SESSION_FINALIZED)).fetchone()
        counted, unresolved = row[0] or 0, row[1] or 0
        finalized = bool(row[2])
        if (changes.counted is None and changes.unresolved is None and not changes.metadata
                and not changes.unresolved_delta):
            return counted, unresolved, finalized
        if changes.counted is not None:
            counted = changes.counted
        if changes.unresolved is not None:
            unresolved = changes.unresolved
        unresolved += changes.unresolved_delta
        metadata = b"{}"
        if changes.metadata:
            found = conn.execute("SELECT metadata FROM th_sessions WHERE uid = ?",
                                 (uid,)).fetchone()
            merged = loads(found[0]) if found else {}
            merged.update(changes.metadata)
            metadata = dumps(merged, "session metadata")
        conn.execute(
            "INSERT INTO th_sessions (uid, counted, unresolved, metadata) VALUES (?1, ?2, ?3, ?4) "
            "ON CONFLICT (uid) DO UPDATE SET counted = ?2, unresolved = ?3"
            + (", metadata = ?4" if changes.metadata else ""),
            (uid, counted, unresolved, metadata))
        return counted, unresolved, finalized

    def _write_configs(self, conn: sqlite3.Connection, configs: Mapping[str, TaskConfig],
                       missing: Mapping[str, int]) -> None:
        uid = self.uid
        conn.execute("DELETE FROM th_waiting WHERE uid = ?", (uid,))
        conn.executemany("INSERT INTO th_waiting (uid, task, missing) VALUES (?, ?, ?)",
                         [(uid, task, count) for task, count in missing.items()])
        rows = [(uid, name, pos, dumps(config.to_json(), f"configuration of task {name}"))
                for pos, (name, config) in enumerate(configs.items())]
        conn.execute("DELETE FROM th_tasks WHERE uid = ?", (uid,))
        conn.execute("DELETE FROM th_index WHERE uid = ?", (uid,))
        conn.executemany("INSERT INTO th_tasks (uid, name, pos, config) VALUES (?, ?, ?, ?)", rows)
        conn.executemany(
            "INSERT INTO th_index (uid, trigger, pos, task) VALUES (?, ?, ?, ?)",
            [(uid, trigger, pos, task) for trigger, tasks in build_index(configs).items()
             for pos, task in enumerate(tasks)])

    # -- reading -----------------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self._connection() as conn:
            return conn.execute(sql, params).fetchall()

    def _load_tasks(self) -> dict[str, TaskConfig]:
        rows = self._rows("SELECT name, config FROM th_tasks WHERE uid = ? ORDER BY pos",
                          (self.uid,))
        return {name: stored_config(name, raw) for name, raw in rows}

    def _load_states(self) -> dict[str, TaskState]:
        rows = self._rows("SELECT task, state FROM th_states WHERE uid = ?", (self.uid,))
        return {task: TaskState.from_json(loads(raw)) for task, raw in rows}

    def _load_instances(self, names: Sequence[str] | None = None) -> dict[str, TaskInstance]:
        if names is None:
            rows = self._rows("SELECT name, data FROM th_instances WHERE uid = ? ORDER BY seq",
                              (self.uid,))
            return {name: TaskInstance.from_json(name, loads(raw)) for name, raw in rows}
        found: dict[str, bytes] = {}
        wanted = list(dict.fromkeys(names))
        with self._connection() as conn:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start:start + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                found.update(conn.execute(
                    f"SELECT name, data FROM th_instances WHERE uid = ? AND name IN ({marks})",
                    (self.uid, *chunk)).fetchall())
        return {name: TaskInstance.from_json(name, loads(found[name]))
                for name in wanted if name in found}

    def _load_kwargs(self) -> dict[str, JsonDict]:
        rows = self._rows("SELECT trigger, kwargs FROM th_fired WHERE uid = ?", (self.uid,))
        return {trigger: loads(raw) for trigger, raw in rows}

    def _load_metadata(self) -> JsonDict:
        rows = self._rows("SELECT metadata FROM th_sessions WHERE uid = ?", (self.uid,))
        return loads(rows[0][0]) if rows else {}

    def _load_firsts(self, triggers: Sequence[str] | None = None) -> dict[str, bytes]:
        rows = self._rows("SELECT trigger, record FROM th_first WHERE uid = ?", (self.uid,))
        wanted = None if triggers is None else set(triggers)
        return {t: bytes(raw) for t, raw in rows if wanted is None or t in wanted}

    def session_uids(self) -> list[str]:
        """Every session of the file that holds anything (a row in any table), sorted.

        One read transaction (a snapshot; writers go on). Each table is walked from one
        uid to the next along its primary key (a lookup per session), not row by row: the
        cost grows with the sessions, not their size.
        """
        found: set[str] = set()
        with self._connection() as conn:
            conn.execute("BEGIN")
            for table in _TABLES:
                found.update(uid for (uid,) in conn.execute(
                    f"WITH RECURSIVE seen(uid) AS (SELECT MIN(uid) FROM {table} UNION ALL "
                    f"SELECT (SELECT MIN(uid) FROM {table} WHERE uid > seen.uid) FROM seen "
                    "WHERE seen.uid IS NOT NULL) SELECT uid FROM seen WHERE uid IS NOT NULL"))
            conn.execute("COMMIT")
        return sorted(found)

    def page_sessions(self, prefix: str = "", cursor: str | None = None,
                      limit: int = 50) -> tuple[list[str], str | None]:
        """A page of the file's sessions, sorted by uid; the cursor is the page's last uid.

        Each table is walked along its primary key from the cursor (or the prefix), one
        lookup per session, for at most ``limit`` + 1 sessions: a page costs the same in a
        file of ten sessions or of a million.
        """
        limit = check_page(prefix, cursor, limit)
        start, op = (cursor, ">") if cursor is not None and cursor >= prefix else (prefix, ">=")
        found: set[str] = set()
        with self._connection() as conn:
            conn.execute("BEGIN")
            for table in _TABLES:
                found.update(uid for (uid,) in conn.execute(_PAGE.format(table=table, op=op), {
                    "start": start, "end": after_prefix(prefix), "limit": limit + 1}))
            conn.execute("COMMIT")
        return sorted_page(sorted(found)[:limit + 1], limit)

    def active_sessions(self) -> list[str]:
        """The sessions with an instance scheduled or running, from their index."""
        return [uid for (uid,) in self._rows("SELECT uid FROM th_active WHERE work > 0", ())]

    def clear(self) -> None:
        """Delete the whole session, its fire keys too."""
        with self._connection(write=True) as conn:
            conn.execute("BEGIN IMMEDIATE")
            for table in _TABLES:
                conn.execute(f"DELETE FROM {table} WHERE uid = ?", (self.uid,))
            conn.execute("COMMIT")

    def __repr__(self) -> str:
        return f"<SqliteStorageBackend uid={self.uid!r} path={self.path!r}>"
