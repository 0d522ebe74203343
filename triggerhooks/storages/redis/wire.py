"""The script's calls on redis-py's connections, without redis-py's per-command work.

A fire that readies nothing is one script call, so what the client spends on a call
counts as much as what the server does. A call here is packed in one pass (the
``EVALSHA <sha> <numkeys> <keys>`` that every call of a session starts with is packed
once, in :class:`ScriptCall`) and sent on a connection of the client's own pool
(:class:`Wire`), kept ready between calls rather than checked in and out of the pool
each time. What redis-py's command path gives that matters is kept: connection errors
are retried per the connection's ``Retry`` (safe: a writing call carries a stamp the
script remembers, see :class:`.protocol.Stamp`), a connection in an unknown state is
disconnected, never reused dirty, one call owns a connection at a time, and a forked
child never touches its parent's connections.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable, Sequence
from typing import Any, cast
from weakref import WeakKeyDictionary, ref

import redis as redis_py
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from .protocol import SCRIPT_SHA

Arg = bytes | str | int
"""A script argument: bytes as they are, anything else as its ``str``, UTF-8 encoded."""

_pack_command: Callable[[tuple[Arg, ...]], bytes] | None
try:  # imported by name: hiredis (optional) need not be installed where this is type-checked
    _pack_command = cast("Callable[[tuple[Arg, ...]], bytes]",
                         importlib.import_module("hiredis").pack_command)
except ImportError:  # pragma: no cover - hiredis is optional
    _pack_command = None

__all__ = ["KEPT_CONNECTIONS", "Arg", "ScriptCall", "Wire", "wire_for"]

KEPT_CONNECTIONS = 16
"""Connections a pool's :class:`Wire` keeps ready between calls (and at most half the
pool's: redis-py's own commands need the rest); calls beyond that many at once take one
from the pool and give it back."""


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(value), value)


class ScriptCall:
    """``EVALSHA`` of the script with one session's keys: packed once, followed by each
    call's arguments."""

    __slots__ = ("head", "keys", "size")

    def __init__(self, keys: Sequence[bytes]) -> None:
        self.keys = tuple(keys)
        self.size = 3 + len(self.keys)
        """How many items the command holds before its arguments."""
        self.head = b"".join(map(_bulk, (b"EVALSHA", SCRIPT_SHA.encode(),
                                          str(len(self.keys)).encode(), *self.keys)))

    def pack(self, args: Sequence[Arg]) -> bytes:
        """The whole command, RESP-encoded, with ``args`` as the script's ``ARGV``."""
        count = b"*%d\r\n" % (self.size + len(args))
        if _pack_command is not None:  # hiredis packs the arguments in C
            packed = _pack_command(args if type(args) is tuple else tuple(args))
            return b"".join((count, self.head, memoryview(packed)[packed.index(b"\n") + 1:]))
        parts = [count, self.head]
        for arg in args:
            raw = arg if type(arg) is bytes else str(arg).encode()
            parts.append(b"$%d\r\n" % len(raw))
            parts.append(raw)
            parts.append(b"\r\n")
        return b"".join(parts)


_forks = 0
"""How many times this process's line of ancestors forked: a :class:`Wire` made before
the last fork holds its parent's connections."""


def _forked() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_forked)


class Wire:
    """Sends packed commands on connections of one redis-py pool, keeping up to
    :data:`KEPT_CONNECTIONS` of them ready. The pool counts those as in use and still
    disconnects them when it is disconnected (they connect again on their next call); one
    that the server closed meanwhile fails its next send, which is retried on a new
    connection."""

    def __init__(self, pool: Any) -> None:
        self._pool = ref(pool)  # the pool's entry in _wires must not keep it alive
        self._ready: list[Any] = []
        self._room = min(KEPT_CONNECTIONS, getattr(pool, "max_connections", 2) // 2)
        self._forks = _forks
        self._named = _names_command(pool)
        self._marks = hasattr(pool.connection_class, "should_reconnect")

    def call(self, packed: bytes) -> Any:
        """Send ``packed`` and read its reply, retrying connection errors as the connection's
        ``Retry`` says; a Redis error reply (``NOSCRIPT`` among them) is raised as such."""
        conn = self._take()
        try:
            reply = conn.retry.call_with_retry(lambda: _round_trip(conn, packed),
                                               lambda _error: conn.disconnect())
        except ResponseError:  # the whole reply was read: the connection is clean
            self._give(conn)
            raise
        except BaseException:
            conn.disconnect()  # whatever was sent or half read goes with the socket
            self._give(conn)
            raise
        self._give(conn)
        return reply

    def _take(self) -> Any:
        if self._forks != _forks:  # forked: the kept connections are the parent's
            self._ready, self._forks = [], _forks
        try:
            return self._ready.pop()
        except IndexError:
            pool = self._live_pool()
            return pool.get_connection("EVALSHA") if self._named else pool.get_connection()

    def _give(self, conn: Any) -> None:
        if self._marks and conn.should_reconnect():
            conn.disconnect()
        if len(self._ready) < self._room:
            self._ready.append(conn)
        else:
            self._live_pool().release(conn)

    def _live_pool(self) -> Any:
        pool = self._pool()
        if pool is None:  # pragma: no cover - a client that calls holds its pool
            raise RedisConnectionError("the connection pool is gone")
        return pool


def _round_trip(conn: Any, packed: bytes) -> Any:
    conn.send_packed_command((packed,))
    return conn.read_response()


def _names_command(pool: Any) -> bool:
    """redis-py before 5.3 wants the command's name to hand out a connection."""
    parameter = inspect.signature(pool.get_connection).parameters.get("command_name")
    return parameter is not None and parameter.default is inspect.Parameter.empty


_wires: WeakKeyDictionary[Any, Wire] = WeakKeyDictionary()


def wire_for(client: redis_py.Redis) -> Wire | None:
    """The wire of ``client``'s pool (one per pool, however many clients share it); ``None``
    for a client that keeps one connection of its own or caches replies, or whose pool
    cannot be told apart by identity: those take redis-py's own path."""
    pool = client.connection_pool
    if getattr(client, "connection", None) is not None or getattr(pool, "cache", None) is not None:
        return None
    try:
        wire = _wires.get(pool)
        if wire is None:
            wire = _wires.setdefault(pool, Wire(pool))
    except TypeError:  # a pool that cannot be hashed or weakly referenced
        return None
    return wire
