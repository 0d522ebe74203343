"""Connections to Redis: one client per URL and process, the script run on it by its SHA,
and Redis errors turned into :class:`StorageUnavailableError`."""

from __future__ import annotations

import itertools
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import redis as redis_py
from redis.backoff import ExponentialWithJitterBackoff
from redis.connection import BlockingConnectionPool, SSLConnection
from redis.exceptions import NoScriptError, RedisError
from redis.retry import Retry

from ...exceptions import InvalidSettingError, StorageUnavailableError
from ..urls import redact_text, redact_url
from .cache import SessionCache
from .protocol import SCRIPT, SCRIPT_SHA

__all__ = ["CACHED_SESSIONS", "MAX_CONNECTIONS", "Client", "client_for_url", "clients", "url_of"]

MAX_CONNECTIONS = 100
"""Connections to one server a process opens at most; more threads wait for one."""
CACHED_SESSIONS = 256
"""Sessions whose facts a process keeps per client (least recently used ones are dropped)."""

T = TypeVar("T")
Build = Callable[[Any], Any]
"""Queues commands on a pipeline."""


class Client:
    """One redis-py client, its script and what this process knows of each session it saw."""

    def __init__(self, client: redis_py.Redis, url: str) -> None:
        self.redis = client
        self.url = url
        self._ids = itertools.count()
        self._id_base = secrets.token_hex(4)
        self._sessions: OrderedDict[str, SessionCache] = OrderedDict()
        self._lock = threading.Lock()

    def txid(self) -> str:
        """A commit id unique to this client (random base and a counter), 16 characters."""
        return f"{self._id_base}{next(self._ids) & 0xFFFFFFFF:08x}"

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()``, with a Redis error raised as :class:`StorageUnavailableError`."""
        try:
            return fn()
        except RedisError as exc:
            raise StorageUnavailableError(
                f"Redis at {redact_url(self.url)} is unavailable: {type(exc).__name__}: "
                f"{redact_text(str(exc), self.url)}") from exc

    def run(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run the script, loading it once per server when the server answers NOSCRIPT."""
        return self.call(lambda: self._evalsha(keys, args))

    def _evalsha(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return self.redis.evalsha(SCRIPT_SHA, len(keys), *keys, *args)
        except NoScriptError:
            self.redis.script_load(SCRIPT)
            return self.redis.evalsha(SCRIPT_SHA, len(keys), *keys, *args)

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
    # seconds, a hung one within half a minute. Retried commands are safe: a commit
    # carries an id the script remembers, so a re-sent one is applied once.
    options: dict[str, Any] = {
        "socket_connect_timeout": 5.0,
        "socket_timeout": 30.0,
        "retry": Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.2), 3),
    }
    # A thread that finds every connection of the process busy (a burst of task threads of
    # the threading runner) waits for one, up to the socket timeout, rather than failing.
    try:
        pool = BlockingConnectionPool.from_url(url, max_connections=MAX_CONNECTIONS,
                                               timeout=options["socket_timeout"], **options)
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
