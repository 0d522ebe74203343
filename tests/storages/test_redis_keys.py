"""Fire keys, resends and what a failed commit tells, on Redis.

A real server throughout: the shared test Redis, reached directly or through a
TCP proxy of the test's own (:class:`Proxy`) that can lose a request or a
reply on a real connection and then refuse connections, as a network does; real
processes where concurrency matters.
"""

from __future__ import annotations

import multiprocessing
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from redis.connection import ConnectionPool

from tests.backends import REDIS_URL
from tests.storages.counting import CountingConnection
from triggerhooks import (
    FireKeyReusedError,
    RedisStorageBackend,
    StorageUnavailableError,
    TriggerManager,
)
from triggerhooks.models import Firing
from triggerhooks.serialization import loads
from triggerhooks.storages import Plan, open_reference
from triggerhooks.storages.redis.protocol import Stamp
from triggerhooks.testing import HoldingRunner, wait_for

DEADLINE = 120.0
"""Seconds a spawned process may take before the test fails."""


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    made = redis.Redis.from_url(REDIS_URL)
    yield made
    made.close()


@pytest.fixture
def make(redis_prefix: str) -> Iterator[Callable[..., RedisStorageBackend]]:
    """Storages under the run's prefix, each on a client of its own (so with its own cache,
    as another process) unless given one; every session is cleared at the end."""
    made: list[RedisStorageBackend] = []
    clients: list[redis.Redis] = []

    def build(uid: str = "keys", cls: type[RedisStorageBackend] = RedisStorageBackend,
              **options: Any) -> RedisStorageBackend:
        if "client" not in options and "url" not in options:
            options["client"] = redis.Redis.from_url(REDIS_URL)
            clients.append(options["client"])
        storage = cls(f"{uid}-{len(made)}" if uid == "keys" else uid, prefix=redis_prefix,
                      **options)
        made.append(storage)
        return storage

    yield build
    for storage in made:
        with _suppressed():
            storage.clear()
    for each in clients:
        each.close()


class _suppressed:
    """Clean-up that must not hide the test's own failure (a proxy may be closed)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True


def repeated(firing: Firing) -> Firing:
    """What a repeat of ``firing`` answers: the same, ``repeated``."""
    return Firing(firing.trigger_name, firing.key, firing.fired_at, firing.scheduled, True,
                  firing.ignored)


def measured(action: Callable[[], Firing]) -> tuple[int, Firing]:
    """How many round trips ``action`` took, and what it returned."""
    before = CountingConnection.sends
    firing = action()
    return CountingConnection.sends - before, firing


def _record(client: redis.Redis, storage: RedisStorageBackend, key: str) -> dict[str, Any]:
    raw = client.hget(storage.keys.fk, key)
    assert raw is not None
    return dict(loads(raw))


# -- a keyed fire, cold and warm -------------------------------------------------------------------


def test_a_keyed_fire_is_applied_once_cold_and_warm(
        make: Callable[..., RedisStorageBackend], held: type[HoldingRunner],
        client: redis.Redis) -> None:
    """Each keyed fire and its repeats, on a process that knows nothing of the session
    (cold) and on one that does (warm): one firing, the same answer each time (but
    ``repeated``), and the round trips of an unkeyed fire: one when nothing becomes ready,
    two when a task does."""
    pool = ConnectionPool.from_url(REDIS_URL, connection_class=CountingConnection)
    setup = make()
    TriggerManager(setup).update_configuration({
        "t": {"after": ["a", "b"], "run": "tests.noop", "using": "held"},
        "w": {"after": ["go"], "andEvery": "tick", "run": "tests.noop", "using": "held"}})

    def process() -> TriggerManager:
        return TriggerManager(make(setup.uid, client=redis.Redis(connection_pool=pool)))

    redis.Redis(connection_pool=pool).ping()  # connect before counting
    warm = process()

    def check(key: str, first: Firing, trips: int) -> None:
        """The first answer, and a cold and a warm repeat: one round trip each."""
        assert not first.repeated and first.key == key and first.fired_at
        assert measured(lambda: process().fire(first.trigger_name, kwargs[key], key=key)) == (
            1, repeated(first))
        assert measured(lambda: warm.fire(first.trigger_name, kwargs[key], key=key)) == (
            1, repeated(first))
        record = _record(client, setup, key)
        assert (record["firedAt"], tuple(record["scheduled"])) == (first.fired_at, first.scheduled)
        assert trips == expected[key]

    kwargs = {"a-1": {"n": 1}, "a-2": {"n": 2}, "a-3": {"n": 3}, "b-1": {"k": 1},
              "go-1": {}, "tick-1": {"k": 1}, "tick-2": {"k": 2}}
    # (a-1 and go-1 are the first firings t and w see: each creates its waiting instance.)
    expected = {"a-1": 2, "a-2": 1, "a-3": 1, "b-1": 2, "go-1": 2, "tick-1": 2, "tick-2": 2}

    trips, first = measured(lambda: process().fire("a", kwargs["a-1"], key="a-1"))  # cold
    check("a-1", first, trips)
    assert first.scheduled == ()
    trips, first = measured(lambda: warm.fire("a", kwargs["a-2"], key="a-2"))  # warm's first: cold
    check("a-2", first, trips)
    trips, first = measured(lambda: warm.fire("a", kwargs["a-3"], key="a-3"))  # warm
    check("a-3", first, trips)
    assert setup.latest_kwargs["a"] == {"n": 3}

    trips, first = measured(lambda: process().fire("b", kwargs["b-1"], key="b-1"))  # cold, readies t
    check("b-1", first, trips)
    assert first.scheduled == ("t#0",) and held.names() == ["t#0"]

    trips, first = measured(lambda: warm.fire("go", key="go-1"))  # warm: w ready, no instance yet
    check("go-1", first, trips)
    trips, first = measured(lambda: process().fire("tick", kwargs["tick-1"], key="tick-1"))
    check("tick-1", first, trips)  # andEvery, cold: read, then commit
    assert first.scheduled == ("w#0",)
    trips, first = measured(lambda: warm.fire("tick", kwargs["tick-2"], key="tick-2"))
    assert trips <= 2
    expected["tick-2"] = trips
    check("tick-2", first, trips)
    assert first.scheduled == ("w#1",)

    assert held.names() == ["t#0", "w#0", "w#1"]
    assert [i.kwargs["tick"] for i in setup.instances_of_task("w")] == [{"k": 1}, {"k": 2}]
    assert len(setup) == 3
    pool.disconnect()


def test_a_keyed_finalization_is_applied_once(make: Callable[..., RedisStorageBackend]) -> None:
    storage = make()
    manager = TriggerManager(storage)
    manager.update_configuration({"t": {"after": ["never"], "run": "tests.noop"}})
    first = manager.fire("sessionFinalized", key="end")
    assert not first.repeated and not first.ignored and storage.is_finalized
    again = TriggerManager(make(storage.uid)).fire("sessionFinalized", key="end")
    assert again == repeated(first)
    assert TriggerManager(make(storage.uid)).fire("sessionFinalized", key="other").ignored


# -- many processes, one key -----------------------------------------------------------------------


def _fire_keyed(number: int, barrier: Any, reference: dict[str, Any], trigger: str,
                answers: Any) -> None:
    import tests.tasks  # noqa: F401 - registers the tasks in this process

    manager = TriggerManager(open_reference(reference))
    if trigger == "tick" and number % 2 == 0:  # even processes know the session: warm
        manager.fire("tick", {"warm-up": number}, key=f"warm-{number}")
    barrier.wait(timeout=60)
    answers.put(manager.fire(trigger, {"shared": True}, key="shared").to_json())


@pytest.mark.slow
@pytest.mark.parametrize("trigger", ["tick", "b"])
def test_eight_processes_firing_one_key_apply_it_once(
        make: Callable[..., RedisStorageBackend], client: redis.Redis, trigger: str) -> None:
    """``tick`` (an andEvery trigger, half the processes warm) is computed before it is
    stored; ``b`` is recorded with its key's provisional record in the first round trip
    (every process is cold) and readies ``t``. Either way the firing is applied once."""
    storage = make(url=REDIS_URL)
    manager = TriggerManager(storage)
    manager.update_configuration({
        "w": {"after": ["go"], "andEvery": "tick", "run": "tests.noop"},
        "t": {"after": ["a", "b"], "run": "tests.noop"}})
    manager.fire("go")
    manager.fire("a")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(9)
    answers = ctx.Queue()
    processes = [ctx.Process(target=_fire_keyed,
                             args=(number, barrier, storage.reference(), trigger, answers))
                 for number in range(8)]
    for process in processes:
        process.start()
    barrier.wait(timeout=60)
    fired = [answers.get(timeout=DEADLINE) for _ in processes]
    for process in processes:
        process.join(timeout=DEADLINE)
    assert [p.exitcode for p in processes] == [0] * 8

    assert sorted(answer["repeated"] for answer in fired) == [False] + [True] * 7
    first = next(answer for answer in fired if not answer["repeated"])
    assert {answer["firedAt"] for answer in fired} == {first["firedAt"]}
    record = _record(client, storage, "shared")
    assert (record["firedAt"], record["scheduled"]) == (first["firedAt"], first["scheduled"])
    if trigger == "tick":
        shared = [i for i in storage.instances_of_task("w") if i.kwargs["tick"] == {"shared": True}]
        # w#0..w#4 (go's firing made the vacant w#0, the first tick took it) and t#0, waiting
        assert [i.name for i in shared] == first["scheduled"] and len(storage) == 6
        assert storage["t#0"].status == "unstarted"
        # the record was written with the firing: every repeat answers what it did
        assert all(answer["scheduled"] == first["scheduled"] for answer in fired)
    else:
        assert first["scheduled"] == ["t#0"] and len(storage) == 2
        # a repeat that came between the first round trip and the second saw the
        # provisional record (nothing scheduled yet)
        assert all(answer["scheduled"] in ([], ["t#0"]) for answer in fired)
        assert storage["w#0"].status == "unstarted"  # vacant: waits for a tick
    assert {i.status for i in storage.instances_of_task("w" if trigger == "tick" else "t")} == {
        "finished"}
    assert storage.latest_kwargs[trigger] == {"shared": True}


# -- a key is one firing ---------------------------------------------------------------------------


def test_a_key_reused_with_other_kwargs_or_another_trigger_is_refused(
        make: Callable[..., RedisStorageBackend], held: type[HoldingRunner]) -> None:
    storage = make()
    manager = TriggerManager(storage)
    manager.update_configuration({"t": {"after": ["a", "b"], "run": "tests.noop", "using": "held"},
                                  "w": {"after": ["go"], "andEvery": "tick", "run": "tests.noop",
                                        "using": "held"}})
    manager.fire("a", {"n": 1, "m": 2}, key="k")
    manager.fire("tick", {"n": 1}, key="tk")
    for fire in (manager.fire, lambda *args, **kw: TriggerManager(make(storage.uid)).fire(
            *args, **kw)):  # warm, then cold
        with pytest.raises(FireKeyReusedError, match="other kwargs"):
            fire("a", {"n": 2}, key="k")
        with pytest.raises(FireKeyReusedError, match="firing of 'a', not 'b'"):
            fire("b", {"n": 1}, key="k")  # would ready t
        with pytest.raises(FireKeyReusedError, match="other kwargs"):
            fire("tick", {"n": 2}, key="tk")
        assert fire("a", {"m": 2, "n": 1}, key="k").repeated  # the same kwargs, in any order
    assert storage.latest_kwargs == {"a": {"n": 1, "m": 2}, "tick": {"n": 1}}
    assert held.names() == [] and [i.name for i in storage] == ["t#0", "w#0"]


def test_keys_survive_a_reconnect_and_go_with_clear(
        make: Callable[..., RedisStorageBackend], client: redis.Redis) -> None:
    storage = make(ttl=60)
    manager = TriggerManager(storage)
    manager.update_configuration({"w": {"after": ["go"], "andEvery": "tick", "run": "tests.noop"}})
    manager.fire("go")
    first = manager.fire("tick", {"n": 1}, key="k")
    assert 55_000 < client.pttl(storage.keys.fk) <= 60_000  # the session's time to live
    storage._client().redis.connection_pool.disconnect()  # the connection is gone ...
    assert manager.fire("tick", {"n": 1}, key="k") == repeated(first)  # ... not the key
    assert TriggerManager(make(storage.uid)).fire("tick", {"n": 1}, key="k").repeated
    assert len(storage) == 1
    storage.clear()
    assert client.exists(storage.keys.fk, storage.keys.meta) == 0
    manager.update_configuration({"w": {"after": ["go"], "andEvery": "tick", "run": "tests.noop"}})
    manager.fire("go")
    again = manager.fire("tick", {"n": 1}, key="k")
    assert not again.repeated and again.scheduled == ("w#0",)


# -- resends ---------------------------------------------------------------------------------------


class Recording(RedisStorageBackend):
    """Keeps every script call it makes, with its reply; ``twice`` (a mode) sends each call
    of that mode twice, as redis-py does when a reply was lost."""

    twice = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[tuple[Any, ...], list[Any]]] = []

    def _call_script(self, mode: str, plan: Plan, payload: Any = (),
                     turn: Any = None) -> list[Any]:
        reply = super()._call_script(mode, plan, payload, turn)
        if mode == self.twice:
            reply = super()._call_script(mode, plan, payload, turn)
        self.calls.append(((mode, plan, payload, turn), reply))
        return reply


def test_a_late_first_send_of_a_commit_that_was_answered_applies_nothing(
        make: Callable[..., RedisStorageBackend], client: redis.Redis) -> None:
    """A commit answered without being applied (here: another writer held the turn) is
    tried again with the next number and applied. A copy of the first call that reaches
    the server only then (a send delayed behind its own resend) applies nothing, although
    every check it carries would pass now."""
    storage = make(cls=Recording)
    assert isinstance(storage, Recording)
    manager = TriggerManager(storage)
    manager.update_configuration({"w": {"after": ["never"], "andEvery": "tick",
                                        "run": "tests.noop"}})
    manager.fire("tick", {"n": 0})  # this process now knows w: the next tick commits at once
    storage.calls.clear()
    client.set(storage.keys.turn, b"someone else", px=300)
    manager.fire("tick", {"n": 1})
    (first, answer), *_ = storage.calls
    assert first[0] == "c" and answer == [b"busy"]
    assert storage.calls[-1][1][0] == b"ok"
    assert [i.kwargs["tick"] for i in storage.instances_of_task("w")] == [{"n": 0}, {"n": 1}]
    assert client.exists(storage.keys.turn) == 0
    assert storage._call_script(*first) == [b"busy"]  # the late copy
    assert len(storage) == 2
    # the control: the same call under a new number would have been applied
    mode, plan, payload, turn = first
    writer = payload[0].partition(":")[0]
    renumbered = [f"{writer}:{10**9}", *payload[1:]]
    assert storage._call_script(mode, plan, renumbered, turn)[0] == b"ok"
    assert [i.kwargs["tick"] for i in storage.instances_of_task("w")] == [
        {"n": 0}, {"n": 1}, {"n": 1}]


def test_a_first_round_trip_sent_twice_is_applied_once(
        make: Callable[..., RedisStorageBackend], held: type[HoldingRunner]) -> None:
    """The cold fire's first call (record the firing and its key) re-sent: the copy
    records nothing again (the task's count of missing triggers goes down once), and the
    fire knows the key's record as its own."""
    setup = make()
    TriggerManager(setup).update_configuration(
        {"t": {"after": ["a", "b"], "run": "tests.noop", "using": "held"}})
    TriggerManager(setup).fire("a")
    storage = make(setup.uid, cls=Recording)
    assert isinstance(storage, Recording)
    storage.twice = "f"
    firing = TriggerManager(storage).fire("b", {"k": 1}, key="b")
    assert [call[0] for call, _ in storage.calls] == ["f", "c"]
    assert storage.calls[0][1][0] == b"recorded"
    assert not firing.repeated and firing.scheduled == ("t#0",) and held.names() == ["t#0"]
    assert TriggerManager(make(setup.uid)).fire("b", {"k": 1}, key="b") == repeated(firing)


# -- a real connection that loses what passes -----------------------------------------------------


class Proxy:
    """A TCP proxy in front of the test Redis. :meth:`lose` makes it drop the next request
    (the server never sees it) or the next reply (the server applied the call, the client
    never hears of it) and cut that connection; while ``refusing`` it accepts connections
    and closes them at once, as a server out of reach does."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.refusing = False
        self._losing = ""
        self._refuse_after = False
        self.lost = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def lose(self, what: str, then_refuse: bool = True) -> None:
        """Lose the next ``"request"`` or ``"reply"``."""
        self.lost.clear()
        self._refuse_after = then_refuse
        self._losing = what

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing:
                conn.close()
                continue
            upstream = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets += [conn, upstream]
            for src, dst, what in ((conn, upstream, "request"), (upstream, conn, "reply")):
                threading.Thread(target=self._pump, args=(src, dst, what, (conn, upstream)),
                                 daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, what: str,
              pair: tuple[socket.socket, socket.socket]) -> None:
        try:
            while data := src.recv(65536):
                if self._losing == what:
                    self._losing = ""
                    self.refusing = self._refuse_after
                    self.lost.set()
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sock in pair:
            with _suppressed():
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()
        with self._lock:
            for sock in self._sockets:
                with _suppressed():
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    parts = urlsplit(REDIS_URL)
    made = Proxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    yield made
    made.close()


class Lossy(RedisStorageBackend):
    """Arms its proxy (``loses``: what to lose and whether the proxy refuses connections
    after) just before the next script call of mode ``mode``; ``reopen`` makes the proxy
    take connections again when the storage asks whether its failed call was applied."""

    proxy: Proxy
    mode = "c"
    loses: tuple[str, bool] | None = None
    reopen = True
    settled: list[Stamp]

    def _call_script(self, mode: str, plan: Plan, payload: Any = (),
                     turn: Any = None) -> list[Any]:
        if mode == self.mode and self.loses is not None:
            what, then_refuse = self.loses
            self.loses = None
            self.proxy.lose(what, then_refuse)
        return super()._call_script(mode, plan, payload, turn)

    def _settle(self, stamp: Stamp) -> bool | None:
        self.settled.append(stamp)
        assert self.proxy.lost.is_set()
        if self.reopen:
            self.proxy.refusing = False
        return super()._settle(stamp)


class LossyInterleaved(Lossy):
    """Runs ``interfere()`` once, while its next transition computes (as another process's
    commit lands between this one's read and its commit)."""

    interfere: Callable[[], object] | None = None

    def transact(self, plan: Plan, compute: Callable[..., Any]) -> Any:
        def interleaved(view: Any) -> Any:
            interfere, self.interfere = self.interfere, None
            if interfere is not None:
                interfere()
            return compute(view)

        return super().transact(plan, interleaved)


@pytest.fixture
def lossy(proxy: Proxy, make: Callable[..., RedisStorageBackend],
          held: type[HoldingRunner]) -> Callable[..., tuple[Lossy, TriggerManager]]:
    """A session configured through the proxy (so its connection is open), and a storage
    on it whose next call of a mode loses something."""

    def build(mode: str, what: str, then_refuse: bool = True, reopen: bool = True,
              cls: type[Lossy] = Lossy) -> tuple[Lossy, TriggerManager]:
        storage = make(cls=cls, url=proxy.url)
        assert isinstance(storage, Lossy)
        storage.proxy, storage.settled, storage.reopen = proxy, [], reopen
        manager = TriggerManager(storage)
        manager.update_configuration({
            "t": {"after": ["a", "b"], "run": "tests.noop", "using": "held"},
            "w": {"after": ["go"], "andEvery": "tick", "run": "tests.noop", "using": "held"}})
        manager.fire("go")
        manager.fire("a")
        manager.fire("tick", {"n": 0})  # this process knows w: a tick commits at once
        storage.mode, storage.loses = mode, (what, then_refuse)
        return storage, manager

    return build


def test_a_commit_whose_reply_was_lost_is_resent_and_applied_once(
        lossy: Callable[..., tuple[Lossy, TriggerManager]], held: type[HoldingRunner]) -> None:
    """redis-py sends the commit again on a new connection: the script answers it as
    applied, with the instance numbers the first application gave."""
    storage, manager = lossy("c", "reply", then_refuse=False)
    firing = manager.fire("tick", {"n": 1})
    assert storage.proxy.lost.is_set() and storage.settled == []
    assert firing.scheduled == ("w#1",) and held.names() == ["w#0", "w#1"]
    assert [i.kwargs["tick"] for i in storage.instances_of_task("w")] == [{"n": 0}, {"n": 1}]


def test_a_resent_commit_names_the_instances_as_its_first_application_numbered_them(
        lossy: Callable[..., tuple[Lossy, TriggerManager]], held: type[HoldingRunner],
        make: Callable[..., RedisStorageBackend], client: redis.Redis) -> None:
    """Another writer took the number this andEvery firing computed (w#1): the script gave
    it the next one (w#2) and its reply was lost. The resent commit is answered with that
    renumbering, so the answer, the fire key's record and the hand-off name w#2."""
    storage, manager = lossy("c", "reply", then_refuse=False, cls=LossyInterleaved)
    assert isinstance(storage, LossyInterleaved)
    theirs = TriggerManager(make(storage.uid))
    storage.interfere = lambda: theirs.fire("tick", {"n": "theirs"})
    firing = manager.fire("tick", {"n": "ours"}, key="ours")
    assert storage.proxy.lost.is_set() and storage.settled == []
    assert firing.scheduled == ("w#2",) and held.names() == ["w#0", "w#1", "w#2"]
    assert any(value.endswith(b' ["w",1]') for value in client.hvals(storage.keys.meta))
    assert _record(client, storage, "ours")["scheduled"] == ["w#2"]
    assert [i.kwargs["tick"] for i in storage.instances_of_task("w")] == [
        {"n": 0}, {"n": "theirs"}, {"n": "ours"}]
    assert manager.fire("tick", {"n": "ours"}, key="ours") == repeated(firing)


def test_a_first_round_trip_whose_reply_was_lost_is_resent_and_applied_once(
        lossy: Callable[..., tuple[Lossy, TriggerManager]], held: type[HoldingRunner]) -> None:
    storage, _ = lossy("f", "reply", then_refuse=False)
    cold = TriggerManager(storage)
    storage._session_cache().reset()  # knows nothing: the fire is recorded first
    firing = cold.fire("b", {"k": 1}, key="b")
    assert storage.proxy.lost.is_set() and storage.settled == []
    assert not firing.repeated and firing.scheduled == ("t#0",)
    assert held.names() == ["w#0", "t#0"]


@pytest.mark.parametrize(("mode", "what", "committed"), [
    ("c", "reply", True), ("c", "request", False), ("f", "reply", True), ("f", "request", False)])
def test_a_failed_write_says_whether_it_was_applied(
        lossy: Callable[..., tuple[Lossy, TriggerManager]], held: type[HoldingRunner],
        mode: str, what: str, committed: bool) -> None:
    """The connection is cut and stays refused through redis-py's retries; then the
    server can be reached again, and the storage finds out what became of its call."""
    storage, manager = lossy(mode, what)
    if mode == "f":
        storage._session_cache().reset()  # a cold fire: the firing is recorded first
    with pytest.raises(StorageUnavailableError) as raised:
        manager.fire("tick", {"n": 1}) if mode == "c" else manager.fire("b", {"k": 1})
    assert raised.value.committed is committed
    assert ("the change was stored" if committed else "nothing was stored") in str(raised.value)
    assert len(storage.settled) == 1
    if mode == "c":
        ticks = [i.kwargs["tick"] for i in storage.instances_of_task("w")]
        assert ticks == ([{"n": 0}, {"n": 1}] if committed else [{"n": 0}])
    else:
        assert ("b" in storage.latest_kwargs) is committed
    # the failed call's number is taken: a copy of it arriving now applies nothing
    call = storage.settled[0]
    raw = storage._client().redis.hget(storage.keys.meta, f"w:{call.writer}")
    assert raw is not None and raw.split(b" ")[0] == (
        call.number.encode() if committed else f"{call.number}-".encode())
    assert held.names() == ["w#0"]  # nothing handed off


def test_a_write_that_fails_while_the_server_stays_out_of_reach_is_unknown(
        lossy: Callable[..., tuple[Lossy, TriggerManager]]) -> None:
    storage, manager = lossy("c", "reply", reopen=False)
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError, match="whether the change was stored is unknown") \
            as raised:
        manager.fire("tick", {"n": 1})
    assert raised.value.committed is None
    assert time.monotonic() - started < 10  # about a second and a half of trying
    storage.proxy.refusing = False
    wait_for(lambda: len(storage.instances_of_task("w")) == 2, message="the proxy to let through")


def test_a_failed_read_stored_nothing(lossy: Callable[..., tuple[Lossy, TriggerManager]]) -> None:
    storage, manager = lossy("r", "request")
    storage._session_cache().reset()  # the update reads the instance first
    with pytest.raises(StorageUnavailableError) as raised:
        manager.update_instance_metadata("w#0", {"seen": True})
    assert raised.value.committed is False and storage.settled == []
    storage.proxy.refusing = False
    with pytest.raises(StorageUnavailableError) as raised:
        storage.proxy.lose("request")
        storage.latest_kwargs  # noqa: B018
    assert raised.value.committed is False and storage.settled == []
    storage.proxy.refusing = False


# -- the sessions of a prefix ----------------------------------------------------------------------


def test_session_uids_lists_the_sessions_of_its_prefix(
        make: Callable[..., RedisStorageBackend], client: redis.Redis, redis_prefix: str) -> None:
    prefix = f"{redis_prefix}-glob*[?]\\^"
    uids = ["plain", "a:b", "{x}", "a%3Ab", "*", "é", "a}:kw"]
    storages = [RedisStorageBackend(uid, REDIS_URL, prefix=prefix) for uid in uids]
    try:
        for storage in storages:
            TriggerManager(storage).fire("x")
        keyed = RedisStorageBackend("keyed", REDIS_URL, prefix=prefix)
        storages.append(keyed)
        TriggerManager(keyed).update_configuration({"t": {"after": ["a"], "run": "tests.noop"}})
        emptied = RedisStorageBackend("emptied", REDIS_URL, prefix=prefix)
        storages.append(emptied)
        TriggerManager(emptied).fire("x")
        emptied.clear()
        client.set(RedisStorageBackend("turn only", prefix=prefix).keys.turn, b"t", px=10_000)
        # a prefix the unescaped pattern would match
        other = RedisStorageBackend("elsewhere", REDIS_URL, prefix=f"{redis_prefix}-globX[?]\\^")
        storages.append(other)
        TriggerManager(other).fire("x")
        assert storages[0].session_uids() == sorted([*uids, "keyed"])
        assert other.session_uids() == ["elsewhere"]
        assert RedisStorageBackend("s", REDIS_URL, prefix=f"{redis_prefix}-none").session_uids() == []
    finally:
        for storage in storages:
            storage.clear()
        client.delete(RedisStorageBackend("turn only", prefix=prefix).keys.turn)
