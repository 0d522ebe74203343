"""A Redis connection that counts round trips, for the tests that count them."""

from __future__ import annotations

from typing import Any

from redis.connection import Connection

__all__ = ["CountingConnection"]

_HANDSHAKE = frozenset({b"HELLO", b"AUTH", b"CLIENT", b"SELECT", b"READONLY"})
"""What a new connection sends before it carries anything (redis-py's handshake)."""


class CountingConnection(Connection):
    """Counts what is sent to Redis: one send is one round trip (pipelines send once). A new
    connection's handshake is not counted: it is paid once per connection, not per call,
    and a process may open one more connection at any time (the storage keeps one ready for
    its script calls while redis-py's own commands take another)."""

    sends = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if _command_name(command) not in _HANDSHAKE:
            type(self).sends += 1
        super().send_packed_command(command, check_health)


def _command_name(command: Any) -> bytes:
    """The name of the (first) command in ``command``, as packed by redis-py."""
    packed = command if isinstance(command, bytes | str) else next(iter(command), b"")
    packed = packed.encode() if isinstance(packed, str) else bytes(packed)
    lines = packed.split(b"\r\n", 3)
    return lines[2].upper() if len(lines) > 2 else b""
