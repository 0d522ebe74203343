"""Connections to PostgreSQL: one psycopg pool per server and process, errors turned into
:class:`StorageUnavailableError` (never with a password), the tables created or upgraded
once per process and schema, and what became of a commit whose reply was lost.

psycopg is an optional extra (``pip install "triggerhooks[postgres]"``): without it this
module still imports, and a storage says what to install when it is built.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ...exceptions import ConflictError, ForeignDatabaseError, StorageUnavailableError
from ..urls import redact_text
from .schema import SCHEMA_VERSION, TABLES, statements
from .settings import Settings, quote_ident

try:
    import psycopg
    import psycopg_pool
    from psycopg.abc import Buffer
    from psycopg.adapt import Loader
except ImportError as missing:  # the extra is not installed
    _missing: ImportError | None = missing
else:
    _missing = None

    class _RawJson(Loader):
        """A ``json`` column as the bytes it holds: the engine decodes only what it uses."""

        def load(self, data: Buffer) -> bytes:
            return bytes(data)

__all__ = ["INSTALL_HINT", "PROBE_SECONDS", "Pool", "pool_for", "pools", "require_driver"]

INSTALL_HINT = 'pip install "triggerhooks[postgres]"'
PROBE_SECONDS = 1.5
"""How long :meth:`Pool.outcome` tries to learn whether a commit whose reply was lost
was applied."""
_LOCK_NOT_AVAILABLE = "55P03"

T = TypeVar("T")


def require_driver() -> None:
    """Raise :class:`StorageUnavailableError` naming the extra when psycopg is missing."""
    if _missing is not None:
        raise StorageUnavailableError(
            f"the PostgreSQL storage needs psycopg 3 and psycopg-pool ({_missing}): "
            f"{INSTALL_HINT}")


def broken(conn: psycopg.Connection[Any]) -> bool:
    """The connection is gone (the server closed it, or the network lost it)."""
    return bool(conn.closed or conn.broken)


class Pool:
    """This process's connections to one server: a ``psycopg_pool.ConnectionPool`` of
    autocommit connections (transitions send their own ``BEGIN``), whose ``json`` columns
    come back as bytes and whose waits for a lock end after the storage's ``timeout``."""

    def __init__(self, settings: Settings) -> None:
        require_driver()
        self.settings = settings
        self.shown = settings.shown
        millis = round(settings.timeout * 1000)
        # A transaction idle for as long as a writer would wait for its lock belongs to a
        # client that stopped (a frozen process): the server ends it and frees the session.
        # Statements are prepared (psycopg does it after a few runs), but planned afresh each
        # time: a generic plan made while a table was small (a sequential scan) would stay,
        # and make every read grow with the table.
        self._setup = (f"SET lock_timeout = {millis}",
                       f"SET idle_in_transaction_session_timeout = {millis}",
                       "SET plan_cache_mode = force_custom_plan")
        self.pool = psycopg_pool.ConnectionPool(
            settings.conninfo, min_size=1, max_size=settings.pool_size,
            timeout=settings.pool_timeout, reconnect_timeout=max(settings.pool_timeout, 5.0),
            kwargs={"autocommit": True}, configure=self._configure, open=False,
            name=_POOL_NAME + self.shown, num_workers=1)
        self.pool.open(wait=False)
        self._ready: set[str] = set()
        self._lock = threading.Lock()

    # -- connections -------------------------------------------------------------------------

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.adapters.register_loader("json", _RawJson)
        for statement in self._setup:
            conn.execute(statement)

    def _direct(self) -> psycopg.Connection[Any]:
        """A connection of its own (outside the pool), configured as the pool's are."""
        conn = psycopg.Connection.connect(self.settings.conninfo, autocommit=True)
        try:
            self._configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of the pool; when none comes within ``pool_timeout`` (all busy, or the
        pool still waiting to reconnect to a server that is back), one of its own for this
        call, or the error that connecting gives (a server down: connection refused)."""
        try:
            conn = self.pool.getconn()
        except psycopg_pool.PoolTimeout as waited:
            conn = self.call(self._direct, waited)
            try:
                yield conn
            finally:
                conn.close()
            return
        try:
            yield conn
        finally:
            self.pool.putconn(conn)

    def discard_idle(self) -> None:
        """Test the idle connections and drop the dead ones (after a server restart)."""
        self.pool.check()

    # -- errors ------------------------------------------------------------------------------

    def error(self, exc: BaseException, schema: str | None = None) -> StorageUnavailableError:
        """``exc`` (psycopg's) as :class:`StorageUnavailableError`, or :class:`ConflictError`
        when a writer waited for its lock longer than ``timeout``; without any secret."""
        where = f"PostgreSQL at {self.shown}" + (f" (schema {schema!r})" if schema else "")
        text = redact_text(" ".join(str(exc).split()), self.settings.url)
        if getattr(exc, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
            return ConflictError(f"{where}: other writers of the session held it for "
                                 f"{self.settings.timeout:g}s: {text}")
        return StorageUnavailableError(f"{where} is unavailable: {type(exc).__name__}: {text}")

    def call(self, fn: Callable[[], T], cause: BaseException | None = None) -> T:
        """``fn()``, with a psycopg error raised as :class:`StorageUnavailableError`."""
        try:
            return fn()
        except psycopg.Error as exc:
            raise self.error(exc) from (cause or exc)

    # -- the tables ----------------------------------------------------------------------------

    def prepare(self, schema: str) -> None:
        """Check (once per process) that ``schema`` holds tables of this schema version, and
        create or upgrade them when it holds none or older ones."""
        if schema in self._ready:
            return
        with self._lock:
            if schema not in self._ready:
                self.migrate(schema, check_only=True)
                self._ready.add(schema)

    def migrate(self, schema: str, check_only: bool = False) -> int:
        """Create or upgrade the tables of ``schema``; return its schema version. With
        ``check_only``, a schema at this version is left alone without taking any lock."""
        try:
            with self.connection() as conn:
                if check_only and self._version(conn, schema) == SCHEMA_VERSION:
                    return SCHEMA_VERSION
                return self._migrate(conn, schema)
        except psycopg.Error as exc:
            error = self.error(exc, schema)
            if getattr(exc, "sqlstate", "") == "42501":  # insufficient privilege
                error = StorageUnavailableError(
                    f"{error}; create the tables with `triggerhooks migrate --storage URL` as a "
                    "role that may, or give the storage a schema of its own (?schema=)")
            raise error from exc

    @staticmethod
    def _version(conn: psycopg.Connection[Any], schema: str) -> int | None:
        """The schema version the tables of ``schema`` have, ``None`` when there are none."""
        # A query of the catalog, not to_regclass(): its name cache may not have seen a table
        # that another migration committed while this one waited for the lock.
        found = conn.execute("SELECT EXISTS (SELECT FROM pg_tables WHERE schemaname = %s "
                             "AND tablename = 'th_version')", (schema,)).fetchone()
        if not found or not found[0]:
            return None
        row = conn.execute(statements(schema).version).fetchone()
        return None if row is None else int(row[0])

    def _migrate(self, conn: psycopg.Connection[Any], schema: str) -> int:
        sql = statements(schema)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 7493))",
                         (f"triggerhooks migrate {schema}",))
            encoding = conn.execute("SHOW server_encoding").fetchone()
            if encoding and str(encoding[0]).upper() not in ("UTF8", "SQL_ASCII"):
                raise StorageUnavailableError(
                    f"PostgreSQL at {self.shown}: the database's encoding is {encoding[0]}; "
                    "triggerhooks stores text as UTF-8: give it a database created with "
                    "ENCODING 'UTF8'")
            version = self._version(conn, schema)
            if version is None:
                self._refuse_foreign(conn, schema)
                exists = conn.execute("SELECT EXISTS (SELECT FROM pg_namespace "
                                      "WHERE nspname = %s)", (schema,)).fetchone()
                if not exists or not exists[0]:
                    conn.execute(f"CREATE SCHEMA {quote_ident(schema)}")
            elif version > SCHEMA_VERSION:
                raise StorageUnavailableError(
                    f"PostgreSQL at {self.shown}: schema {schema!r} holds triggerhooks tables of "
                    f"schema version {version}, newer than this triggerhooks understands "
                    f"({SCHEMA_VERSION}): upgrade triggerhooks (or use another ?schema=)")
            for statement in sql.ddl:
                conn.execute(statement)
            if version != SCHEMA_VERSION:
                for statement in sql.set_version:
                    conn.execute(statement, {"version": SCHEMA_VERSION})
        return SCHEMA_VERSION

    def _refuse_foreign(self, conn: psycopg.Connection[Any], schema: str) -> None:
        """Tables of ours without ``th_version`` belong to another application: refused,
        and left as they are."""
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s "
                            "AND tablename = ANY(%s) ORDER BY tablename",
                            (schema, list(TABLES))).fetchall()
        if rows:
            names = ", ".join(str(row[0]) for row in rows)
            raise ForeignDatabaseError(
                f"PostgreSQL at {self.shown}: schema {schema!r} holds tables named as "
                f"triggerhooks's ({names}) but no th_version: they belong to another "
                "application, and were left unchanged; give triggerhooks a schema of its own "
                "(?schema=)")

    # -- a lost reply ----------------------------------------------------------------------------

    def outcome(self, xid: str) -> bool | None:
        """Whether transaction ``xid`` committed (``True``) or never will (``False``), asked
        on a connection of its own for about :data:`PROBE_SECONDS`; ``None`` when the server
        stayed out of reach (or the transaction stayed open that long)."""
        deadline = time.monotonic() + PROBE_SECONDS
        pause = 0.05
        while True:
            try:
                with psycopg.Connection.connect(self.settings.conninfo, autocommit=True,
                                                connect_timeout=2) as conn:
                    row = conn.execute("SELECT pg_xact_status(%s::xid8)", (xid,)).fetchone()
                status = str(row[0]) if row else None
                if status in ("committed", "aborted"):
                    return status == "committed"
            except psycopg.Error:
                pass
            if time.monotonic() + pause > deadline:
                return None
            time.sleep(pause)
            pause = min(2 * pause, 0.4)


_POOL_NAME = "triggerhooks "
"""Pools are named after the URL they serve (without its password), as psycopg_pool's own
log lines show them (a connection that failed, at WARNING)."""

pools: dict[tuple[int, Settings], Pool] = {}
_pools_lock = threading.Lock()
_inherited: list[Pool] = []
"""A forked child's copies of its parent's pools: never used (their connections are the
parent's), never closed (that would close the parent's), kept so they are never collected."""


def pool_for(settings: Settings) -> Pool:
    """This process's pool for ``settings`` (one per server URL, schema aside), made on
    first use."""
    key = (os.getpid(), settings.pool_key)
    found = pools.get(key)
    if found is None:
        with _pools_lock:
            found = pools.get(key)
            if found is None:
                found = pools[key] = Pool(settings.pool_key)
    return found


def _forget_pools() -> None:
    """A forked child: its parent's pools (and the lock's state) are not its own."""
    global _pools_lock
    _inherited.extend(pools.values())
    pools.clear()
    _pools_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pools)
