"""The script's send path (``storages/redis/wire.py``): packed as redis-py packs, one call
per connection at a time, a forked child on connections of its own, and real faults: a
server killed and restarted between calls, a kept connection killed while it waited, a
reply lost after the script ran. Each fault ends in a call applied once and, when it is
given up on, an error that says whether it was.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import AbstractBackoff, NoBackoff
from redis.connection import BlockingConnectionPool, ConnectionPool
from redis.retry import Retry

from tests.backends import REDIS_URL
from tests.helpers import run_threads
from tests.recovery_helpers import RedisServer, redis_server
from triggerhooks import RedisStorageBackend, StorageUnavailableError, TriggerManager
from triggerhooks.storages.redis import wire
from triggerhooks.storages.redis.protocol import Mode
from triggerhooks.storages.redis.wire import ScriptCall, Wire, wire_for

needs_server = pytest.mark.skipif(shutil.which("redis-server") is None,
                                  reason="needs redis-server")


@pytest.fixture
def make(redis_prefix: str) -> Iterator[Callable[..., RedisStorageBackend]]:
    """Storages under the run's prefix on the test's Redis; every session cleared at the end."""
    made: list[RedisStorageBackend] = []

    def build(uid: str, **options: Any) -> RedisStorageBackend:
        storage = RedisStorageBackend(uid, **{"prefix": redis_prefix, **options})
        made.append(storage)
        return storage

    yield build
    for storage in made:
        storage.clear()


def _fan_out(manager: TriggerManager, tasks: int = 3, padding: int = 0) -> None:
    """Tasks that each wait for ``go`` and ``more``: the first firing of ``go`` counts each
    down from two to one (so a firing applied twice would show as zero)."""
    manager.update_configuration({
        f"t{n}": {"after": ["go", "more"], "run": "tests.noop",
                  "withParams": {"pad": {"text": "x" * padding}}} for n in range(tasks)})


def _missing(client: redis.Redis, storage: RedisStorageBackend) -> dict[str, int]:
    return {task.decode(): int(count) for task, count in client.hgetall(storage.keys.mc).items()}


# -- packing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("packer", ["hiredis", "python"])
def test_a_call_is_packed_as_redis_py_packs_it(packer: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    if packer == "python":
        monkeypatch.setattr(wire, "_pack_command", None)
    elif wire._pack_command is None:  # pragma: no cover - hiredis is a test dependency
        pytest.skip("hiredis is not installed")
    keys = [b"p:{s}:cfg", "p:{é}:kw".encode(), b""]
    args = [Mode.RECORD, b"4096", "", "trigger é", 0, 500, -3, b"\x00\r\n" * 3,
            "x" * 70_000, b'{"n":1}']
    packed = ScriptCall(keys).pack(args)
    connection = redis.Redis().connection_pool.make_connection()
    expected = b"".join(connection.pack_command(
        "EVALSHA", wire.SCRIPT_SHA, len(keys), *keys, *[str(a) if isinstance(a, Mode) else a
                                                         for a in args]))
    assert packed == expected


# -- sharing ----------------------------------------------------------------------------------------


def test_threads_sharing_a_client_each_read_their_own_reply() -> None:
    """Each call owns its connection from send to reply: many threads on one pool never
    read each other's replies, and the pool keeps no more ready than it may."""
    client = redis.Redis.from_url(REDIS_URL)
    found = wire_for(client)
    assert isinstance(found, Wire) and wire_for(client) is found  # one per pool
    barrier = threading.Barrier(8)

    def echo(number: int) -> None:
        barrier.wait(30)
        for call in range(300):
            payload = f"{number}:{call}:".encode() + b"y" * (call * 7)
            reply = found.call(b"*2\r\n$4\r\nECHO\r\n$%d\r\n%b\r\n" % (len(payload), payload))
            assert reply == payload

    assert run_threads(echo, range(8)) == []
    assert 1 <= len(found._ready) <= wire.KEPT_CONNECTIONS
    client.close()


def test_threads_firing_through_one_client_each_get_their_own_answers(
        make: Callable[..., RedisStorageBackend]) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    storages = [make(f"shared-{n}", client=client) for n in range(6)]

    def fire(storage: RedisStorageBackend) -> None:
        manager = TriggerManager(storage)
        for number in range(40):
            storage._session_cache().reset()  # cold: each fire reads what it recorded
            firing = manager.fire(f"{storage.uid}-{number % 4}", {"n": number})
            assert firing.trigger_name == f"{storage.uid}-{number % 4}"

    assert run_threads(fire, storages) == []
    for storage in storages:
        assert storage.latest_kwargs == {f"{storage.uid}-{k}": {"n": 36 + k} for k in range(4)}
    client.close()


@pytest.mark.parametrize("size", [1, 2])
def test_a_small_pool_keeps_room_for_redis_py_s_own_commands(
        size: int, make: Callable[..., RedisStorageBackend]) -> None:
    """Connections kept ready count as in use: at most half a pool's are kept, so the reads
    redis-py makes itself still get one (a pool of one keeps none)."""
    pool = BlockingConnectionPool.from_url(REDIS_URL, max_connections=size, timeout=2)
    client = redis.Redis(connection_pool=pool)
    storage = make("small-pool", client=client)
    manager = TriggerManager(storage)
    _fan_out(manager)
    manager.fire("go")
    storage._session_cache().reset()
    manager.fire("more")  # a cold fire that readies the tasks: a script call, then reads
    assert [i.status.value for i in storage] == ["finished"] * 3
    assert len(wire_for(client)._ready) == size // 2  # type: ignore[union-attr]
    client.close()


def test_a_client_with_one_connection_of_its_own_takes_redis_py_s_path(
        make: Callable[..., RedisStorageBackend]) -> None:
    client = redis.Redis.from_url(REDIS_URL, single_connection_client=True)
    assert wire_for(client) is None
    storage = make("single", client=client)
    TriggerManager(storage).fire("a", {"n": 1})
    assert storage.latest_kwargs == {"a": {"n": 1}}
    client.close()


class EqualPool(ConnectionPool):
    """A pool compared by value (so unhashable): no wire can be kept for it."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EqualPool) and other.connection_kwargs == self.connection_kwargs


def test_a_pool_that_cannot_be_told_apart_takes_redis_py_s_path(
        make: Callable[..., RedisStorageBackend]) -> None:
    client = redis.Redis(connection_pool=EqualPool.from_url(REDIS_URL))
    assert wire_for(client) is None
    storage = make("equal-pool", client=client)
    TriggerManager(storage).fire("a", {"n": 1})
    assert storage.latest_kwargs == {"a": {"n": 1}}
    client.close()


def test_a_forked_child_uses_connections_of_its_own(
        make: Callable[..., RedisStorageBackend]) -> None:
    """Parent and child fire at the same time through the same storage object: had the
    child kept its parent's ready connection, they would read each other's replies."""
    storage = make("forked", url=REDIS_URL)
    manager = TriggerManager(storage)
    manager.fire("parent", {"n": -1})
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: reported by its exit code
        code = 1
        try:
            for number in range(200):
                storage._session_cache().reset()
                manager.fire("child", {"n": number})
            code = 0
        finally:
            os._exit(code)
    for number in range(200):
        storage._session_cache().reset()
        manager.fire("parent", {"n": number})
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert storage.latest_kwargs == {"parent": {"n": 199}, "child": {"n": 199}}


# -- real faults --------------------------------------------------------------------------------------


class Lifting(AbstractBackoff):
    """No wait between redis-py's tries, but lifts the server's limit on replies first."""

    def __init__(self, admin: redis.Redis) -> None:
        self.admin = admin
        self.lifted = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> Lifting:
        return self  # each connection deep-copies its Retry: one count for them all

    def reset(self) -> None:
        pass

    def compute(self, failures: int) -> float:
        self.admin.config_set("client-output-buffer-limit", "normal 0 0 0")
        self.lifted += 1
        return 0.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as made:
        yield made


@pytest.fixture
def admin(server: RedisServer) -> Iterator[redis.Redis]:
    made = redis.Redis.from_url(server.url)
    yield made
    made.close()


def _limit_replies(admin: redis.Redis) -> None:
    """Replies of more than 64 kB (a script's reply takes 16 kB more from the start) now
    close their connection: the command has run, its reply is lost."""
    admin.config_set("client-output-buffer-limit", "normal 65536 0 0")


@pytest.mark.slow
@needs_server
def test_a_server_killed_and_restarted_between_calls_costs_a_resend(
        server: RedisServer, admin: redis.Redis) -> None:
    """The kept connection died with the server, and the new server has no script loaded:
    the call is sent again on a new connection, the script loaded, the fire applied once."""
    storage = RedisStorageBackend("restarted", server.url, prefix="wire")
    manager = TriggerManager(storage)
    _fan_out(manager)
    manager.fire("other")  # the storage's connection is ready, the script loaded
    server.kill()
    server.start()  # the same data (append-only file, fsync always)
    storage._session_cache().reset()
    manager.fire("go", {"n": 1})  # cold: recorded by the script's first call
    manager.fire("go", {"n": 2})  # warm: committed
    assert storage.latest_kwargs == {"other": {}, "go": {"n": 2}}
    assert admin.info("commandstats")["cmdstat_script|load"]["calls"] == 1  # after NOSCRIPT
    assert _missing(admin, storage) == {"t0": 1, "t1": 1, "t2": 1}
    assert [(i.name, i.status.value) for i in storage] == [
        ("t0#0", "unstarted"), ("t1#0", "unstarted"), ("t2#0", "unstarted")]


@pytest.mark.slow
@needs_server
@pytest.mark.parametrize("cold", [True, False], ids=["cold", "warm"])
def test_a_server_killed_for_good_fails_the_fire_within_seconds(
        server: RedisServer, cold: bool) -> None:
    storage = RedisStorageBackend("killed", server.url, prefix="wire")
    manager = TriggerManager(storage)
    _fan_out(manager)
    manager.fire("go")
    server.kill()
    if cold:
        storage._session_cache().reset()
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError) as raised:
        manager.fire("go", {"n": 1})
    assert time.monotonic() - started < 10  # retries, then about 1.5 s of asking
    assert raised.value.committed is None
    assert "whether the change was stored is unknown" in str(raised.value)
    assert f"127.0.0.1:{server.port}" in str(raised.value)
    server.start()
    manager.fire("go", {"n": 2})
    assert storage.latest_kwargs == {"go": {"n": 2}}


@pytest.mark.slow
@needs_server
def test_a_kept_connection_killed_while_it_waited_costs_a_resend(
        server: RedisServer, admin: redis.Redis) -> None:
    storage = RedisStorageBackend("client-killed", server.url, prefix="wire")
    manager = TriggerManager(storage)
    _fan_out(manager)
    manager.fire("other")
    killed = admin.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1  # the storage's kept connection among them
    storage._session_cache().reset()
    manager.fire("go", {"n": 1})
    assert storage.latest_kwargs == {"other": {}, "go": {"n": 1}}
    assert _missing(admin, storage) == {"t0": 1, "t1": 1, "t2": 1}


@pytest.mark.slow
@needs_server
def test_a_record_whose_reply_was_lost_is_resent_and_applied_once(
        server: RedisServer, admin: redis.Redis) -> None:
    """The server runs the cold fire's record, then closes the connection instead of
    answering (its reply is over the limit). redis-py's next try (the limit lifted) is a copy
    of an applied call: the script answers it from what is stored and applies nothing."""
    backoff = Lifting(admin)
    client = redis.Redis.from_url(server.url, retry=Retry(backoff, 3))
    storage = RedisStorageBackend("lost-reply", client=client, prefix="wire")
    manager = TriggerManager(storage)
    _fan_out(manager, tasks=40, padding=2500)  # a record's reply of about 100 kB
    manager.fire("other")
    storage._session_cache().reset()
    _limit_replies(admin)
    manager.fire("go", {"n": 1})
    assert backoff.lifted == 1  # one reply was lost
    assert storage.latest_kwargs == {"other": {}, "go": {"n": 1}}
    assert set(_missing(admin, storage).values()) == {1}  # counted down once
    assert len(storage) == 40
    client.close()


@pytest.mark.slow
@needs_server
def test_a_record_whose_replies_are_all_lost_says_it_was_stored(
        server: RedisServer, admin: redis.Redis) -> None:
    """Every try runs (the first applies, the copies do not) and loses its reply; the
    storage then asks on a connection of its own (a short reply) and says the change was
    stored."""
    client = redis.Redis.from_url(server.url, retry=Retry(NoBackoff(), 2))
    storage = RedisStorageBackend("all-lost", client=client, prefix="wire")
    manager = TriggerManager(storage)
    _fan_out(manager, tasks=40, padding=2500)
    manager.fire("other")
    storage._session_cache().reset()
    _limit_replies(admin)
    try:
        with pytest.raises(StorageUnavailableError) as raised:
            manager.fire("go", {"n": 1})
    finally:
        admin.config_set("client-output-buffer-limit", "normal 0 0 0")
    assert raised.value.committed is True
    assert "the change was stored" in str(raised.value)
    assert storage.latest_kwargs == {"other": {}, "go": {"n": 1}}
    assert set(_missing(admin, storage).values()) == {1}
    manager.fire("more")  # firing on makes up for what the lost reply did not run
    assert len(storage) == 40 and {i.status.value for i in storage} == {"finished"}
    client.close()
