"""Redis dies in the middle of a stream of fires: every fire is stored whole or raised, none half.

The test runs its own ``redis-server`` (append-only file, fsync on every write)
on a free port with a password, kills it with SIGKILL while a loop fires, and
starts it again on the same files.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from triggerhooks import RedisStorageBackend, StorageUnavailableError, TriggerManager
from triggerhooks.testing import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

PASSWORD = "sekret-pw"


class Server:
    """A redis-server of the test's own, restartable on the same data directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                 "--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", "always",
                 "--save", "", "--requirepass", PASSWORD],
                stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            wait_for(lambda: self._answers(client), timeout=20, message="redis-server to start")
        finally:
            client.close()

    @staticmethod
    def _answers(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=20)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    made = Server(tmp_path)
    made.start()
    yield made
    if made.process is not None and made.process.poll() is None:
        made.kill()


def test_a_killed_server_leaves_every_fire_whole_or_raised(server: Server) -> None:
    storage = RedisStorageBackend("faulty", server.url, prefix="faults")
    manager = TriggerManager(storage)
    manager.update_configuration({
        "ticks": {"after": ["never"], "andEvery": "tick", "run": "tests.noop"},
        "done": {"after": ["tick"], "run": "tests.noop"},
        "vetoed": {"after": ["never"], "unless": ["tick"], "run": "tests.noop"},
    })
    stored: list[int] = []
    failed: list[int] = []
    committed: dict[int, bool | None] = {}  # what each failed fire said of its change
    restarted = threading.Event()

    def kill_and_restart() -> None:
        wait_for(lambda: len(stored) >= 100, timeout=60, message="fires before the kill")
        server.kill()
        wait_for(lambda: failed, timeout=60, message="a fire to fail while Redis is down")
        server.start()
        restarted.set()

    killer = threading.Thread(target=kill_and_restart)
    killer.start()
    number = 0
    after_restart = 0
    try:
        while after_restart < 100:
            try:
                manager.fire("tick", {"n": number})
            except StorageUnavailableError as exc:
                assert "redis://:***@127.0.0.1" in str(exc) and PASSWORD not in str(exc)
                failed.append(number)
                committed[number] = exc.committed
            else:
                stored.append(number)
                after_restart += restarted.is_set()
            number += 1
            assert number < 100_000
    finally:
        killer.join(timeout=120)

    fresh = RedisStorageBackend("faulty", server.url, prefix="faults")  # nothing cached
    states = fresh._load_states()
    instances = fresh.instances_of_task("ticks")
    assert len(instances) == states["ticks"].next  # no instance counted but missing
    numbers = [i.kwargs["tick"]["n"] for i in instances]
    assert len(numbers) == len(set(numbers))  # none stored twice
    assert set(stored) <= set(numbers) <= set(stored) | set(failed)
    assert {n for n, c in committed.items() if c is True} <= set(numbers)  # stored, as said
    assert not {n for n, c in committed.items() if c is False} & set(numbers)  # nor the others
    assert numbers == sorted(numbers)
    assert states["ticks"].open == {i.name: "unstarted" for i in instances}
    assert fresh.latest_kwargs["tick"] == {"n": numbers[-1]}
    assert [(i.name, i.status) for i in fresh.instances_of_task("vetoed")] == [
        ("vetoed#0", "abandoned")]
    assert [(i.name, i.status) for i in fresh.instances_of_task("done")] == [
        ("done#0", "finished")]
    probe = redis.Redis.from_url(server.url)
    try:
        counters = probe.hmget(fresh.keys[6], "counted", "unresolved")
    finally:
        probe.close()
    assert [int(c) for c in counters] == [3, 1]  # only "ticks" is unresolved


def test_redis_down_names_the_url_without_its_password(server: Server) -> None:
    storage = RedisStorageBackend("down", server.url, prefix="faults")
    manager = TriggerManager(storage)
    manager.fire("a")
    server.kill()
    with pytest.raises(StorageUnavailableError) as raised:
        manager.fire("b")
    assert str(raised.value).startswith(
        f"Redis at redis://:***@127.0.0.1:{server.port}/0 is unavailable: ")
    assert PASSWORD not in str(raised.value)
    server.start()
    manager.fire("c")
    assert storage.latest_kwargs == {"a": {}, "c": {}}
