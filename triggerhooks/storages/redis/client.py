"""Connections to Redis: one client per URL and process, the script run on it by its SHA
(sent on :mod:`.wire`), Redis errors turned into :class:`StorageUnavailableError`, and the
pool of writer ids that makes a re-sent call recognizable (see :class:`.protocol.Stamp`)."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

import redis as redis_py
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.connection import BlockingConnectionPool, ConnectionPool, SSLConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.retry import Retry

from ...exceptions import InvalidSettingError, StorageUnavailableError
from ..urls import redact_text, redact_url, url_scheme
from .cache import SessionCache
from .protocol import SCRIPT, SCRIPT_SHA, Stamp
from .wire import Arg, ScriptCall, wire_for

__all__ = ["CACHED_SESSIONS", "MAX_CONNECTIONS", "PROBE_SECONDS", "Client", "Writer",
           "client_for_url", "clients", "give_back", "take_writer", "url_of"]

MAX_CONNECTIONS = 100
"""Connections to one server a process opens at most; more threads wait for one."""
CACHED_SESSIONS = 256
"""Sessions whose facts a process keeps per client (least recently used ones are dropped)."""
PROBE_SECONDS = 1.5
"""How long :meth:`Client.probe` tries to reach the server after a writing call failed."""
_PROBE_TIMEOUT = 0.5

T = TypeVar("T")
Build = Callable[[Any], Any]
"""Queues commands on a pipeline."""


class Writer:
    """A writer id and the number of its last writing call; one transition at a time uses
    it, so its calls reach the server one after the other, their numbers rising."""

    __slots__ = ("id", "number", "settled")

    def __init__(self) -> None:
        self.id = secrets.token_hex(8)  # 64 bits: two writers of a session never share one
        self.number = 0
        self.settled = True
        """Every call of this writer was answered, or found applied or not; a writer with
        a call whose fate is unknown goes back to no pool."""

    def stamp(self) -> Stamp:
        """The stamp of this writer's next call."""
        self.number += 1
        return Stamp(self.id, str(self.number))


_writers: list[Writer] = []
"""The pool: taken from and given back to by one atomic list operation each (no lock: a
transition takes and gives back one)."""


def take_writer() -> Writer:
    """A writer of this process's pool (a new one when all are in use). One pool serves
    every client, server and session: a writer's numbers rise across all of them, so each
    session gains at most one field per writer this process ever had in use at once."""
    try:
        return _writers.pop()
    except IndexError:
        return Writer()


def _forget_writers() -> None:
    """A forked child: its parent's writers are not its own."""
    _writers.clear()


os.register_at_fork(after_in_child=_forget_writers)


def give_back(writer: Writer) -> None:
    """Return a writer to the pool, unless one of its calls may still land."""
    if writer.settled:
        _writers.append(writer)


class Client:
    """One redis-py client, its script and what this process knows of each session it saw."""

    def __init__(self, client: redis_py.Redis, url: str) -> None:
        self.redis = client
        self.url = url
        self._wire = wire_for(client)
        self._sessions: OrderedDict[str, SessionCache] = OrderedDict()
        self._lock = threading.Lock()
        self._probe: redis_py.Redis | None = None

    def probe(self, keys: Sequence[str | bytes], args: Sequence[Any]) -> Any:
        """Run the script on a connection of its own with short timeouts, trying again for
        about :data:`PROBE_SECONDS`; its reply, or ``None`` when the server stayed out of
        reach (after a writing call failed: was it applied?)."""
        deadline = time.monotonic() + PROBE_SECONDS
        pause = 0.05
        while True:
            try:
                return self._evalsha(keys, args, self._probe_client())
            except RedisError:
                pass
            if time.monotonic() + pause > deadline:
                return None
            time.sleep(pause)
            pause = min(2 * pause, 0.4)

    def _probe_client(self) -> redis_py.Redis:
        probe = self._probe
        if probe is None:
            pool = self.redis.connection_pool
            options = dict(pool.connection_kwargs)
            timeout = min(_PROBE_TIMEOUT, options.get("socket_timeout") or _PROBE_TIMEOUT)
            options.update(socket_timeout=timeout, socket_connect_timeout=timeout,
                           retry=Retry(NoBackoff(), 0))
            probe = self._probe = redis_py.Redis(connection_pool=ConnectionPool(
                connection_class=pool.connection_class, max_connections=4, **options))
        return probe

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()``, with a Redis error raised as :class:`StorageUnavailableError`."""
        try:
            return fn()
        except RedisError as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: RedisError) -> StorageUnavailableError:
        return StorageUnavailableError(
            f"Redis at {redact_url(self.url)} is unavailable: {type(exc).__name__}: "
            f"{redact_text(str(exc), self.url)}")

    def run(self, script: ScriptCall, args: Sequence[Arg]) -> Any:
        """Run the script, loading it once per server when the server answers NOSCRIPT."""
        wire = self._wire
        try:
            if wire is None:
                return self._evalsha(script.keys, args)
            packed = script.pack(args)
            try:
                return wire.call(packed)
            except NoScriptError:
                self.redis.script_load(SCRIPT)
                return wire.call(packed)
        except RedisError as exc:
            raise self._unavailable(exc) from exc

    def _evalsha(self, keys: Sequence[str | bytes], args: Sequence[Any],
                 client: redis_py.Redis | None = None) -> Any:
        client = client or self.redis
        # Encoded here, in one pass: redis-py takes about twice as long over each argument
        # that is not bytes yet, and a commit has dozens.
        packed = [*keys, *[arg if type(arg) is bytes else str(arg).encode() for arg in args]]
        try:
            return client.evalsha(SCRIPT_SHA, len(keys), *packed)
        except NoScriptError:
            client.script_load(SCRIPT)
            return client.evalsha(SCRIPT_SHA, len(keys), *packed)

    def pipeline(self, build: Build) -> list[Any]:
        """The replies to the commands ``build`` queues, sent in one round trip (MULTI/EXEC)."""

        def run() -> list[Any]:
            pipe = self.redis.pipeline(transaction=True)
            build(pipe)
            return list(pipe.execute())

        return self.call(run)

    def session(self, key: str) -> SessionCache:
        """What this process knows of the session whose first key is ``key``."""
        with self._lock:
            found = self._sessions.get(key)
            if found is None:
                found = self._sessions[key] = SessionCache()
                if len(self._sessions) > CACHED_SESSIONS:
                    self._sessions.popitem(last=False)
            else:
                self._sessions.move_to_end(key)
            return found


clients: dict[tuple[int, str], Client] = {}
_clients_lock = threading.Lock()


def client_for_url(url: str) -> Client:
    """This process's client for ``url``, connected on first use."""
    key = (os.getpid(), url)
    found = clients.get(key)
    if found is None:
        with _clients_lock:
            found = clients.get(key)
            if found is None:
                found = clients[key] = Client(_connect(url), url)
    return found


def _connect(url: str) -> redis_py.Redis:
    # Defaults that the URL's own options override: a dead server is reported within
    # seconds, a hung one within half a minute. A dropped connection is retried (safe: a
    # writing call carries a stamp the script remembers, so a re-sent one is applied once);
    # a timeout is not: a server that did not answer in time would be waited for again.
    options: dict[str, Any] = {
        "socket_connect_timeout": 5.0,
        "socket_timeout": 30.0,
        "retry": Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.2), 3,
                       supported_errors=(RedisConnectionError,)),
    }
    database = unquote(urlsplit(url).path).strip("/")
    if url_scheme(url) in ("redis", "rediss") and database and not database.isdigit():
        # redis-py ignores such a path: every session would silently go to database 0.
        raise InvalidSettingError(f"invalid Redis URL {redact_url(url)!r}: the database "
                                  f"after the host is a number (redis://host:port/0), "
                                  f"not {database!r}")
    # A thread that finds every connection of the process busy (a burst of task threads of
    # the threading runner) waits for one, up to the socket timeout, rather than failing.
    try:
        pool = BlockingConnectionPool.from_url(url, max_connections=MAX_CONNECTIONS,
                                               timeout=options["socket_timeout"], **options)
        # An option no connection takes fails here, not at the first command (built, not
        # connected: a connection opens its socket on first use).
        pool.connection_class(**pool.connection_kwargs)
    except (ValueError, TypeError) as exc:
        raise InvalidSettingError(
            f"invalid Redis URL {redact_url(url)!r}: {redact_text(str(exc), url)}") from None
    client = redis_py.Redis(connection_pool=pool)
    client.auto_close_connection_pool = True
    return client


def url_of(client: redis_py.Redis) -> str:
    """A URL (without password) that reaches the server ``client`` talks to."""
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    user = quote(kwargs["username"], safe="") + "@" if kwargs.get("username") else ""
    if kwargs.get("path"):
        return f"unix://{user}{kwargs['path']}?db={kwargs.get('db', 0)}"
    scheme = "rediss" if issubclass(pool.connection_class, SSLConnection) else "redis"
    host, port, db = kwargs.get("host", "127.0.0.1"), kwargs.get("port", 6379), kwargs.get("db", 0)
    return f"{scheme}://{user}{host}:{port}/{db}"
