"""The PostgreSQL storage backend: construction, transitions and readers."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from typing import Any, ClassVar

from ...core.types import Commit, Compute, Plan, TaskState
from ...exceptions import StorageUnavailableError
from ...models import TaskConfig, TaskInstance, stored_config
from ...serialization import JsonDict, loads
from ..base import StorageBackend, after_prefix, check_page, sorted_page
from ..urls import STORAGE_URL_ENV, strip_password, url_secrets
from .connections import Pool, broken, pool_for, pools, require_driver
from .schema import statements
from .settings import (
    DEFAULT_POSTGRES_URL,
    POSTGRES_URL_ENV,
    SCHEMES,
    Settings,
    complete_url,
    loaded_name,
    lock_key,
    quote_ident,
    stored_name,
)
from .view import PostgresView
from .writes import Counters, queue_writes

with contextlib.suppress(ImportError):  # require_driver() says so when a storage is built
    import psycopg

__all__ = ["PostgresStorageBackend"]

_ESCAPE_MARK = "\x01"
"""What an escaped name starts with as stored (see ``settings.stored_name``)."""


log = logging.getLogger(__name__)


class _Stale(Exception):
    """The connection was dead before the transition could commit anything: try once more."""


class PostgresStorageBackend(StorageBackend):
    """Sessions in PostgreSQL tables, shared by every process that reaches the server.

    ``url`` is a libpq URL (``postgresql://user:password@host:5432/database``; default
    ``$TRIGGERHOOKS_POSTGRES_URL``, else ``postgresql://``: libpq's defaults). Its query may
    carry libpq's own parameters (``sslmode``, ``connect_timeout``, ...) and triggerhooks's:
    ``schema`` (where the tables live; default ``public``), ``timeout`` (seconds a writer
    waits for the session's lock, default 30), ``pool_size`` (connections per process,
    default 10) and ``pool_timeout`` (seconds to wait for one, default 5); keyword
    arguments win over the URL's. Needs ``pip install "triggerhooks[postgres]"``.
    """

    name = "postgresql"
    url_schemes: ClassVar[tuple[str, ...]] = SCHEMES
    supports_fire_keys: ClassVar[bool] = True

    def __init__(self, uid: str, url: str | None = None, *, schema: str | None = None,
                 timeout: float | None = None, pool_size: int | None = None,
                 pool_timeout: float | None = None) -> None:
        super().__init__(uid)
        self.settings = Settings.of(url or os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL,
                                    schema, timeout, pool_size, pool_timeout)
        require_driver()
        self.url = self.settings.url
        self.schema = self.settings.schema
        self._sql = statements(self.schema)
        self._uid = stored_name(uid)
        self._lock = lock_key(self.schema, uid)
        self._pool: Pool | None = None

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, uid: str, **options: Any) -> PostgresStorageBackend:
        """A storage at ``url``; its query may also carry ``schema``, ``timeout``,
        ``pool_size`` and ``pool_timeout``."""
        return cls(uid, url, **options)

    def reference(self) -> JsonDict:
        """The session's address without any secret (``secretWithheld`` says one was left
        out): a worker completes it with a URL of its own, or libpq's password file."""
        settings = self.settings
        reference: JsonDict = {"backend": self.name, "uid": self.uid,
                               "url": strip_password(settings.url), "schema": settings.schema,
                               "timeout": settings.timeout, "poolSize": settings.pool_size,
                               "poolTimeout": settings.pool_timeout}
        if url_secrets(settings.url):
            reference["secretWithheld"] = True
        return reference

    @classmethod
    def from_reference(cls, reference: JsonDict) -> PostgresStorageBackend:
        candidates = [settings.url for _, settings in list(pools)]
        candidates += [os.environ.get(POSTGRES_URL_ENV) or "", os.environ.get(STORAGE_URL_ENV) or ""]
        url = complete_url(reference["url"], bool(reference.get("secretWithheld")), candidates)
        return cls(reference["uid"], url, schema=reference.get("schema"),
                   timeout=reference.get("timeout"), pool_size=reference.get("poolSize"),
                   pool_timeout=reference.get("poolTimeout"))

    # -- connections ---------------------------------------------------------------------------

    def _connections(self) -> Pool:
        """This process's pool for the server, the tables checked (once per process)."""
        pool = self._pool
        if pool is None or pool not in pools.values():  # none yet, or the parent's (a fork)
            pool = self._pool = pool_for(self.settings)
        pool.prepare(self.schema)
        return pool

    def migrate(self) -> int:
        """Create the tables (and the schema) or upgrade them to this version of
        triggerhooks; return the schema version. Transitions do it on first use too."""
        return self._connections().migrate(self.schema)

    # -- transitions -----------------------------------------------------------------------------

    def transact(self, plan: Plan, compute: Compute) -> Commit:
        """Compute and write in one transaction holding the session's lock: one round trip to
        read what ``plan`` names (and take the lock), one to write what changed and commit.

        An error raises :class:`StorageUnavailableError` with ``committed=False``, except when
        the connection broke while the ``COMMIT`` was on its way: the server is asked what
        became of the transaction; if it committed, the transition returns as if the reply
        had come; if not, ``committed`` is ``False``; ``None`` when it cannot be reached."""
        pool = self._connections()
        try:
            return self._transact(pool, plan, compute, retry=True)
        except _Stale:
            pool.discard_idle()  # every idle connection is likely as dead (a restart)
            return self._transact(pool, plan, compute, retry=False)

    def _transact(self, pool: Pool, plan: Plan, compute: Compute, retry: bool) -> Commit:
        with pool.connection() as conn:
            view = PostgresView(conn, self._sql, self.uid, self.schema)
            sent = False  # the COMMIT went out: from here on, what it did may be unknown
            try:
                with conn.pipeline() as pipeline:
                    view.begin(plan, self._lock)
                    changes = compute(view)
                    if changes.is_empty:
                        counters: Counters = (view.counted, view.unresolved, view.finalized)
                        conn.execute("ROLLBACK")  # nothing to store (and no commit to flush)
                    else:
                        counters = queue_writes(conn, view, changes)
                        conn.execute("COMMIT")
                        sent = True
                    pipeline.sync()
            except psycopg.Error as exc:
                self._rollback(conn)
                if broken(conn) and not sent and retry:
                    raise _Stale from exc
                if not (sent and broken(conn)):
                    error = pool.error(exc, self.schema)
                    error.committed = False
                    raise error from exc
                self._lost_reply(pool, view, exc)
            except BaseException:
                self._rollback(conn)
                raise
        return Commit(changes, counters[1], counters[0], counters[2])

    def _lost_reply(self, pool: Pool, view: PostgresView, exc: psycopg.Error) -> None:
        """The connection broke while the commit was on its way: ask the server whether the
        transaction committed. If it did, carry on as if the reply had come."""
        committed = pool.outcome(view.xid)
        if committed:
            log.warning("%s: the connection to PostgreSQL broke while session %r committed; "
                        "the server says the commit was stored", pool.shown, self.uid)
            return
        outcome = ("nothing was stored" if committed is False
                   else "whether the change was stored is unknown")
        error = StorageUnavailableError(f"{pool.error(exc, self.schema)}; {outcome}")
        error.committed = committed
        raise error from exc

    @staticmethod
    def _rollback(conn: psycopg.Connection[Any]) -> None:
        """End a transaction left open (an error before its ``COMMIT``)."""
        if broken(conn):
            return
        try:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
        except psycopg.Error:
            pass  # the pool discards a connection it cannot reset

    # -- reading ---------------------------------------------------------------------------------

    def _rows(self, statement: str, **params: Any) -> list[tuple[Any, ...]]:
        """The rows of one statement, run on its own (a dead connection is tried once more)."""
        pool = self._connections()
        for retry in (True, False):
            with pool.connection() as conn:
                try:
                    return conn.execute(statement, {"uid": self._uid, **params}).fetchall()
                except psycopg.Error as exc:
                    if not (retry and broken(conn)):
                        raise pool.error(exc, self.schema) from exc
            pool.discard_idle()
        raise AssertionError("unreachable")

    def _load_tasks(self) -> dict[str, TaskConfig]:
        return {loaded_name(name): stored_config(loaded_name(name), raw)
                for name, raw in self._rows(self._sql.load_tasks)}

    def _load_states(self) -> dict[str, TaskState]:
        return {loaded_name(task): TaskState.from_json(loads(raw))
                for task, raw in self._rows(self._sql.load_states)}

    def _load_instances(self, names: Sequence[str] | None = None) -> dict[str, TaskInstance]:
        if names is None:
            rows = self._rows(self._sql.load_instances)
            return {loaded_name(n): TaskInstance.from_json(loaded_name(n), loads(d)) for n, d in rows}
        wanted = list(dict.fromkeys(names))
        found = {loaded_name(name): data for name, data in self._rows(
            self._sql.instances, names=[stored_name(name) for name in wanted])}
        return {name: TaskInstance.from_json(name, loads(found[name]))
                for name in wanted if name in found}

    def _load_kwargs(self) -> dict[str, JsonDict]:
        return {loaded_name(t): loads(raw) for t, raw in self._rows(self._sql.load_kwargs)}

    def _load_metadata(self) -> JsonDict:
        rows = self._rows(self._sql.load_metadata)
        return loads(rows[0][0]) if rows else {}

    def _load_firsts(self, triggers: Sequence[str] | None = None) -> dict[str, bytes]:
        found = {loaded_name(t): bytes(raw) for t, raw in self._rows(self._sql.load_firsts)}
        return found if triggers is None else {t: found[t] for t in triggers if t in found}

    def session_uids(self) -> list[str]:
        """Every session of the schema that holds anything (each has its row in
        ``th_sessions``), sorted."""
        return sorted(loaded_name(uid) for (uid,) in self._rows(self._sql.session_uids))

    def page_sessions(self, prefix: str = "", cursor: str | None = None,
                      limit: int = 50) -> tuple[list[str], str | None]:
        """A page of the schema's sessions, sorted by uid; the cursor is the page's last uid.

        An index range of ``th_sessions`` from the cursor (or the prefix) to the end of the
        prefix, at most ``limit`` + 1 rows: a page costs the same among ten sessions or a
        million. Names stored escaped (those holding a NUL: rare) are read apart and merged.
        """
        limit = check_page(prefix, cursor, limit)
        start, op = (cursor, ">") if cursor is not None and cursor >= prefix else (prefix, ">=")
        found = [name for name in (loaded_name(uid) for (uid,) in self._rows(
                    self._page_sql("uid >= %(mark)s AND uid < %(next)s", ""),
                    mark=_ESCAPE_MARK, next=chr(ord(_ESCAPE_MARK) + 1)))
                 if name.startswith(prefix) and (name > start if op == ">" else name >= start)]
        if "\0" not in prefix:  # names that hold a NUL are all escaped
            if "\0" in start:  # no plain name equals it; those above it are above this
                start, op = start[:start.index("\0")], ">"
            end = after_prefix(prefix)
            where = f"uid {op} %(start)s" + (" AND uid < %(end)s" if end else "")
            found += [loaded_name(uid) for (uid,) in self._rows(
                self._page_sql(where + " AND left(uid, 1) <> %(mark)s", "LIMIT %(limit)s"),
                start=start, end=end, mark=_ESCAPE_MARK, limit=limit + 1)]
        return sorted_page(sorted(found)[:limit + 1], limit)

    def _page_sql(self, where: str, tail: str) -> str:
        return (f"SELECT uid FROM {quote_ident(self.schema)}.th_sessions WHERE {where} "
                f"ORDER BY uid {tail}")

    def active_sessions(self) -> list[str]:
        """The sessions with an instance scheduled or running, from their index."""
        return [loaded_name(uid) for (uid,) in self._rows(self._sql.active)]

    def clear(self) -> None:
        """Delete the whole session, its fire keys too, in one transaction (after the
        session's writers)."""
        pool = self._connections()
        for retry in (True, False):
            with pool.connection() as conn:
                try:
                    with conn.pipeline():
                        conn.execute("BEGIN")
                        conn.execute(self._sql.lock, {"lock": self._lock})
                        for statement in self._sql.clear:
                            conn.execute(statement, {"uid": self._uid})
                        conn.execute("COMMIT")
                    return
                except psycopg.Error as exc:
                    self._rollback(conn)
                    if not (retry and broken(conn)):  # a dead connection: once more
                        raise pool.error(exc, self.schema) from exc
            pool.discard_idle()

    def __repr__(self) -> str:
        return (f"<PostgresStorageBackend uid={self.uid!r} url={self.settings.shown!r} "
                f"schema={self.schema!r}>")
