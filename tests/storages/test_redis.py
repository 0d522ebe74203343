"""What only the Redis backend does: keys, TTL, round trips, optimistic checks, URLs, errors."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.connection import ConnectionPool
from redis.crc import key_slot

from tests.backends import REDIS_URL
from tests.storages.counting import CountingConnection
from triggerhooks import (
    ConflictError,
    RedisStorageBackend,
    StorageUnavailableError,
    TriggerManager,
    open_storage,
    storage_backends,
)
from triggerhooks.signals import session_finalized
from triggerhooks.storages import STORAGE_URL_ENV, Changes, Commit, Plan, SessionView, open_reference
from triggerhooks.storages.redis import REDIS_PREFIX_ENV, REDIS_URL_ENV
from triggerhooks.testing import HoldingRunner, wait_for
from triggerhooks.testing.signals import connected

Compute = Callable[[SessionView], Changes]


class Interleaved(RedisStorageBackend):
    """Runs ``interfere()`` while computing the first ``times`` attempts of each transition,
    as if another process wrote between this one's read and its commit."""

    interfere: Callable[[], None] = staticmethod(lambda: None)
    times = 1

    def transact(self, plan: Plan, compute: Compute) -> Commit:
        self.computes = 0

        def interleaved(view: SessionView) -> Changes:
            self.computes += 1
            if self.computes <= self.times:
                self.interfere()
            return compute(view)

        return super().transact(plan, interleaved)


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    made = redis.Redis.from_url(REDIS_URL)
    yield made
    made.close()


@pytest.fixture
def make(redis_prefix: str) -> Iterator[Callable[..., RedisStorageBackend]]:
    """Storages under the run's prefix, each on its own client (so with its own cache)."""
    made: list[RedisStorageBackend] = []
    clients: list[redis.Redis] = []

    def build(uid: str = "session", cls: type[RedisStorageBackend] = RedisStorageBackend,
              **options: Any) -> RedisStorageBackend:
        if "client" not in options:
            options["client"] = redis.Redis.from_url(REDIS_URL)
            clients.append(options["client"])
        storage = cls(f"{uid}-{len(made)}" if uid == "session" else uid, prefix=redis_prefix,
                      **options)
        made.append(storage)
        return storage

    yield build
    for storage in made:
        storage.clear()
    for each in clients:
        each.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- keys -------------------------------------------------------------------------------------


def test_a_session_lives_under_one_hash_tag(make: Callable[..., RedisStorageBackend],
                                            client: redis.Redis, redis_prefix: str) -> None:
    storage = make("a:b{c}d")
    manager = TriggerManager(storage)
    manager.update_configuration({"t": {"after": ["x"], "run": "tests.noop"}})
    manager.fire("x", {"k": 1}, key="x-1")  # a keyed fire: the fire keys' hash is written too
    assert all(key.startswith(f"{redis_prefix}:{{a%3Ab%7Bc%7Dd}}:") for key in storage.keys)
    assert len({key_slot(key.encode()) for key in storage.keys}) == 1
    written = {key.decode() for key in client.scan_iter(match=f"{redis_prefix}:{{a%3Ab*")}
    assert written == set(storage.keys) - {storage.keys.turn}  # a turn is held only briefly


def test_uids_never_share_keys(make: Callable[..., RedisStorageBackend]) -> None:
    uids = ["a:b", "a", "b:a", "a%3Ab", "{a:b}", "a}:{b", "a:b:kw", "é"]
    keys = [set(make(uid).keys) for uid in uids]
    assert sum(len(k) for k in keys) == len(set().union(*keys))


def test_prefix_from_environment(monkeypatch: pytest.MonkeyPatch, redis_prefix: str) -> None:
    monkeypatch.setenv(REDIS_PREFIX_ENV, f"{redis_prefix}-env")
    monkeypatch.setenv(REDIS_URL_ENV, REDIS_URL)
    storage = storage_backends.get("redis", "s")
    assert isinstance(storage, RedisStorageBackend)
    assert storage.keys[0] == f"{redis_prefix}-env:{{s}}:cfg"
    assert RedisStorageBackend("s", prefix="").keys[0] == "{s}:cfg"
    with pytest.raises(ValueError, match="cannot contain braces"):
        RedisStorageBackend("s", prefix="a{b}")


# -- round trips --------------------------------------------------------------------------------


def test_round_trips_per_fire(make: Callable[..., RedisStorageBackend],
                              held: type[HoldingRunner]) -> None:
    """A fire that readies nothing takes one round trip, whether this process knows the
    session (warm) or not (cold); one that readies a task, or is the first a task sees (it
    creates the task's waiting instance), at most two."""
    pool = ConnectionPool.from_url(REDIS_URL, connection_class=CountingConnection)
    setup = make()
    TriggerManager(setup).update_configuration({
        "t": {"after": ["a", "b"], "run": "tests.noop", "using": "held"},
        "u": {"after": ["c"], "run": "tests.noop", "using": "held"},
        "v": {"after": ["a", "d"], "unless": ["e"], "run": "tests.noop", "using": "held"},
        "w": {"after": ["f"], "andEvery": "tick", "run": "tests.noop", "using": "held"},
        "fan": {"after": [f"x{n}" for n in range(200)], "run": "tests.noop", "using": "held"}})

    def round_trips(action: Callable[[], object]) -> int:
        before = CountingConnection.sends
        action()
        return CountingConnection.sends - before

    def process() -> TriggerManager:
        return TriggerManager(make(setup.uid, client=redis.Redis(connection_pool=pool)))

    redis.Redis(connection_pool=pool).ping()  # connect (and say hello) before counting
    # cold, nothing ready; t#0 and v#0 are created, waiting
    assert round_trips(lambda: process().fire("a", {"n": 1})) == 2
    warm = process()
    assert round_trips(lambda: warm.fire("a", {"n": 2})) == 1
    assert round_trips(lambda: warm.fire("a", {"n": 3})) == 1  # warm, nothing ready
    # Vetoes v (rare: once per task): reads the waiting v#0, what it received, and who waits
    # for v; writes v#0 abandoned.
    assert round_trips(lambda: warm.fire("e")) <= 5
    assert round_trips(lambda: process().fire("b")) == 2  # cold, t becomes ready
    assert round_trips(lambda: warm.fire("c")) <= 2  # warm, u becomes ready
    assert round_trips(lambda: process().fire("x0")) == 2  # fan#0 is created, waiting
    for n in range(1, 199):  # a fan-in, cold: the waiting fan#0 is not written again
        assert round_trips(lambda n=n: process().fire(f"x{n}")) == 1
    assert round_trips(lambda: warm.fire("x199")) <= 2
    assert held.names() == ["t#0", "u#0", "fan#0"]
    assert setup["t#0"].kwargs == {"a": {"n": 1}, "b": {}}  # the first firing it received
    assert setup["fan#0"].kwargs == {f"x{n}": {} for n in range(200)}
    assert round_trips(lambda: process().fire("tick", {"k": 1})) == 2  # andEvery: read, commit
    assert round_trips(lambda: warm.fire("tick", {"k": 2})) <= 2
    assert [i.status for i in setup.instances_of_task("w")] == ["unstarted", "unstarted"]
    assert round_trips(lambda: process().fire("f")) == 2  # cold, two instances of w ready
    assert held.names()[-2:] == ["w#0", "w#1"]
    pool.disconnect()


# -- optimistic concurrency ----------------------------------------------------------------------


def test_a_trigger_fired_between_read_and_commit_is_seen(
        make: Callable[..., RedisStorageBackend]) -> None:
    ours = make(cls=Interleaved)
    theirs = make(ours.uid)
    TriggerManager(ours).update_configuration({"fan": {"after": ["x", "y"], "run": "tests.noop"}})
    ours.interfere = lambda: TriggerManager(theirs).fire("y")  # type: ignore[method-assign]
    TriggerManager(ours).fire("x")
    assert [(i.name, i.status) for i in ours] == [("fan#0", "finished")]


def test_a_task_made_ready_between_read_and_commit_is_scheduled_once(
        make: Callable[..., RedisStorageBackend], held: type[HoldingRunner]) -> None:
    """Two cascades into one fan-in, the other one committed while this one computed: this
    commit found the fan-in still waiting, counted from a stale read. Its check of that
    count fails, and the retry schedules the fan-in (once)."""
    ours = make(cls=Interleaved)
    theirs = make(ours.uid)
    TriggerManager(ours).update_configuration({
        "p": {"after": ["go"], "run": "tests.noop", "using": "held"},
        "q": {"after": ["go"], "run": "tests.noop", "using": "held"},
        "fan": {"after": ["p", "q"], "run": "tests.noop", "using": "held"}})
    TriggerManager(theirs).fire("go")
    assert sorted(held.names()) == ["p#0", "q#0"]
    TriggerManager(ours).update_instance_metadata("p#0", {"seen": True})  # ours knows p's task
    ours.interfere = lambda: TriggerManager(theirs).execute("q#0")  # type: ignore[method-assign]
    TriggerManager(ours).execute("p#0")
    assert [(i.name, i.status) for i in ours.instances_of_task("fan")] == [("fan#0", "scheduled")]
    assert held.names().count("fan#0") == 1


def test_concurrent_first_finalizations_finalize_once(
        make: Callable[..., RedisStorageBackend]) -> None:
    ours = make(cls=Interleaved)
    theirs = make(ours.uid)
    calls: list[str] = []

    def receiver(sender: Any, session_uid: str, **kwargs: Any) -> None:
        calls.append(session_uid)

    TriggerManager(ours).update_configuration({"t": {"after": ["a"], "run": "tests.noop"}})
    ours.interfere = lambda: TriggerManager(theirs).fire("sessionFinalized")  # type: ignore[method-assign]
    with connected(receiver, session_finalized):
        TriggerManager(ours).fire("sessionFinalized")
    assert calls == [ours.uid]
    assert ours.computes == 2


def test_a_stale_cache_never_runs_an_instance_twice(
        make: Callable[..., RedisStorageBackend], held: type[HoldingRunner]) -> None:
    ours, theirs = make(), make()
    theirs = make(ours.uid)
    mine = TriggerManager(ours)
    mine.update_configuration({"t": {"after": ["a"], "run": "tests.echo", "using": "held"}})
    mine.fire("a")  # this process now knows t#0 as scheduled
    assert TriggerManager(theirs).execute("t#0") is not None
    assert mine.execute("t#0") is None
    assert ours["t#0"].status == "finished"


def test_instances_known_from_earlier_commits_stay_correct(
        make: Callable[..., RedisStorageBackend], held: type[HoldingRunner],
        tmp_path: Any) -> None:
    ours = make()
    theirs = make(ours.uid)
    mine = TriggerManager(ours)
    mine.update_configuration({"t": {"after": ["go"], "andEvery": "page", "run": "tests.record",
                                     "using": "held",
                                     "withParams": {"record": {"path": str(tmp_path / "runs")}}}})
    for number in range(4):
        mine.fire("page", {"n": number})
    mine.fire("go")  # schedules t#0..t#3; this process knows them, version by version
    assert held.names() == ["t#0", "t#1", "t#2", "t#3"]
    assert TriggerManager(theirs).execute("t#2") is not None
    assert mine.execute("t#0") is not None  # its knowledge of t#2 is stale now
    assert mine.execute("t#2") is None
    assert mine.execute("t#1") is not None
    assert TriggerManager(theirs).execute("t#3") is not None
    assert mine.execute("t#3") is None
    assert sorted((tmp_path / "runs").read_text().split()) == ["t#0", "t#1", "t#2", "t#3"]
    assert [i.status for i in ours.instances_of_task("t")] == ["finished"] * 4


def test_instances_changed_elsewhere_are_read_again(
        make: Callable[..., RedisStorageBackend], held: type[HoldingRunner]) -> None:
    ours = make()
    theirs = make(ours.uid)
    mine = TriggerManager(ours)
    mine.update_configuration({"t": {"after": ["go"], "andEvery": "page", "unless": ["stop"],
                                     "run": "tests.noop", "using": "held"}})
    mine.fire("page", {"n": 0})
    mine.fire("page", {"n": 1})  # this process knows t#0 and t#1, unstarted
    other = TriggerManager(theirs)
    other.fire("go")
    other.update_instance_metadata("t#1", {"note": "changed elsewhere"})
    mine.fire("stop")  # abandons both, as they are now
    abandoned = ours["t#1"]
    assert abandoned.status == "abandoned"
    assert abandoned.metadata["note"] == "changed elsewhere"
    assert set(abandoned.metadata["timestamps"]) == {"unstarted", "scheduled", "abandoned"}


def test_a_configuration_changed_elsewhere_is_seen(make: Callable[..., RedisStorageBackend]) -> None:
    ours = make()
    theirs = make(ours.uid)
    mine = TriggerManager(ours)
    mine.update_configuration({"t": {"after": ["a"], "run": "tests.noop"}})
    mine.fire("q")  # known to concern no task
    TriggerManager(theirs).update_configuration({"z": {"after": ["q", "r"], "run": "tests.noop"}})
    mine.fire("r")
    assert ours["z#0"].status == "finished"


def test_and_every_firings_of_two_writers_never_collide(
        make: Callable[..., RedisStorageBackend], held: type[HoldingRunner]) -> None:
    """Each computed the next instance as ``t#1``: the later commit takes the next free
    number instead of failing, and hands the instance off under that name."""
    ours = make(cls=Interleaved)
    theirs = make(ours.uid)
    mine = TriggerManager(ours)
    mine.update_configuration({"t": {"after": ["go"], "andEvery": "tick", "run": "tests.noop",
                                     "using": "held"}})
    mine.fire("go")
    mine.fire("tick", {"from": "first"})  # this process knows t has one instance
    ours.interfere = lambda: TriggerManager(theirs).fire(  # type: ignore[method-assign]
        "tick", {"from": "them"})
    mine.fire("tick", {"from": "us"})
    assert ours.computes == 1
    assert [(i.name, i.status, i.kwargs["tick"]["from"]) for i in ours.instances_of_task("t")] == [
        ("t#0", "scheduled", "first"), ("t#1", "scheduled", "them"), ("t#2", "scheduled", "us")]
    assert held.names() == ["t#0", "t#1", "t#2"]
    assert len(ours) == 3 and ours.get_unresolved_tasks() == [ours.tasks["t"]]
    ours.times = 0
    mine.fire("tick", {"from": "us again"})  # what this process learned stays usable
    assert ours["t#3"].kwargs["tick"] == {"from": "us again"}
    held.release()
    assert [i.status for i in ours] == ["finished"] * 4 and ours.is_finalized


def test_a_fire_cut_off_after_it_was_recorded_is_made_up_for_by_firing_again(
        make: Callable[..., RedisStorageBackend], held: type[HoldingRunner]) -> None:
    """A cold fire is recorded in its first round trip; the connection lost before the
    second (which schedules what it made ready) leaves it recorded, nothing scheduled.
    Firing the same trigger again schedules it, once."""

    class CutOff(RedisStorageBackend):
        def _attempt(self, *args: Any, **kwargs: Any) -> Any:
            raise StorageUnavailableError("connection lost")

    setup = make()
    TriggerManager(setup).update_configuration(
        {"t": {"after": ["a", "b"], "run": "tests.noop", "using": "held"}})
    TriggerManager(setup).fire("a")
    with pytest.raises(StorageUnavailableError, match="connection lost"):
        TriggerManager(make(setup.uid, cls=CutOff)).fire("b", {"k": 1})
    assert setup.latest_kwargs["b"] == {"k": 1} and setup["t#0"].status == "unstarted"
    TriggerManager(make(setup.uid)).fire("b", {"k": 2})
    # t#0 received b's first firing, recorded before the cut.
    assert held.names() == ["t#0"] and setup["t#0"].kwargs == {"a": {}, "b": {"k": 1}}
    TriggerManager(make(setup.uid)).fire("b", {"k": 3})
    assert held.names() == ["t#0"] and len(setup) == 1


def test_conflicts_give_up_after_a_bounded_number_of_attempts(
        make: Callable[..., RedisStorageBackend], held: type[HoldingRunner]) -> None:
    """With ``max_attempts`` a transition gives up (by default it never does)."""
    ours = make(cls=Interleaved, max_attempts=3)
    theirs = make(ours.uid)
    ours.times = 10**6
    setup = TriggerManager(theirs)
    setup.update_configuration({"t": {"after": ["go"], "run": "tests.noop", "using": "held"}})
    setup.fire("go")
    edits = iter(range(10**6))
    ours.interfere = lambda: setup.update_instance_metadata(  # type: ignore[method-assign]
        "t#0", {"theirs": next(edits)})
    with pytest.raises(ConflictError, match="gave up after 3 attempts"):
        TriggerManager(ours).update_instance_metadata("t#0", {"ours": True})
    assert ours.computes == 3
    assert ours["t#0"].metadata["theirs"] == 2 and "ours" not in ours["t#0"].metadata


class Spying(RedisStorageBackend):
    """Keeps the size of every commit's arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[tuple[str, int]] = []

    def _call_script(self, mode: str, plan: Plan, payload: Any = (),
                     turn: Any = None) -> list[Any]:
        self.sent.append((mode, len(payload)))
        return super()._call_script(mode, plan, payload, turn)


def test_what_a_commit_checks_stays_flat_in_a_fan_in(
        make: Callable[..., RedisStorageBackend], held: type[HoldingRunner]) -> None:
    """A cascade into a task waiting for 1,000 triggers: its commit checks one count,
    not every trigger that has not fired; the commit that makes it ready checks no
    trigger either."""
    storage = make(cls=Spying)
    assert isinstance(storage, Spying)
    waits = [f"x{n}" for n in range(1000)]
    manager = TriggerManager(storage)
    manager.update_configuration({
        "p": {"after": ["go"], "run": "tests.noop", "using": "held"},
        "fan": {"after": ["p", *waits], "run": "tests.noop", "using": "held"}})
    manager.fire("go")
    for trigger in waits[:500]:
        manager.fire(trigger)
    storage.sent.clear()
    manager.execute("p#0")  # claim, then complete + cascade into the fan-in (not ready)
    commits = [size for mode, size in storage.sent if mode == "c"]
    assert commits and max(commits) < 60, storage.sent
    for trigger in waits[500:-1]:
        manager.fire(trigger)
    storage.sent.clear()
    manager.fire(waits[-1])  # makes the fan-in ready: its kwargs read at once, committed
    assert [mode for mode, _ in storage.sent] == ["c"]
    assert max(size for _, size in storage.sent) < 60, storage.sent
    assert held.names() == ["p#0", "fan#0"]
    assert storage["fan#0"].kwargs == {"p": {}, **{t: {} for t in waits}}


def test_a_writer_that_keeps_losing_takes_the_turn(
        make: Callable[..., RedisStorageBackend], held: type[HoldingRunner]) -> None:
    """Another writer changes the same instance during each of this one's first six
    computations. After three losses this one takes the session's turn with its next
    commit: the other waits for it (here until the turn's time runs out, as it waits
    inside this one's computation), and this transition never gives up."""
    ours = make(cls=Interleaved)
    ours.turn_ms = 100
    ours.times = 6
    theirs = make(ours.uid)
    setup = TriggerManager(theirs)
    setup.update_configuration({"t": {"after": ["go"], "run": "tests.noop", "using": "held"}})
    setup.fire("go")
    waited: list[float] = []

    def interfere() -> None:
        started = time.monotonic()
        setup.update_instance_metadata("t#0", {"theirs": len(waited)})
        waited.append(time.monotonic() - started)

    ours.interfere = interfere  # type: ignore[method-assign]
    TriggerManager(ours).update_instance_metadata("t#0", {"ours": True})
    assert ours.computes == 7
    assert len(waited) == 6 and all(w >= 0.05 for w in waited[4:])  # its 4th commit takes it
    assert all(w < 0.05 for w in waited[:4])
    assert ours["t#0"].metadata["theirs"] == 5 and ours["t#0"].metadata["ours"] is True


def test_every_write_waits_while_another_writer_holds_the_turn(
        make: Callable[..., RedisStorageBackend], client: redis.Redis) -> None:
    storage = make()
    manager = TriggerManager(storage)
    manager.update_configuration({"t": {"after": ["go"], "andEvery": "tick", "run": "tests.noop"},
                                  "u": {"after": ["a", "b"], "run": "tests.noop"}})
    manager.fire("go")
    for fire in (lambda: manager.fire("a"), lambda: manager.fire("tick")):
        client.set(storage.keys.turn, b"someone else", px=200)
        started = time.monotonic()
        fire()
        assert time.monotonic() - started >= 0.15
    assert storage.latest_kwargs.keys() >= {"a", "tick"}
    assert [i.status for i in storage.instances_of_task("t")] == ["finished"]


def test_a_session_stored_without_counts_still_works(
        make: Callable[..., RedisStorageBackend], client: redis.Redis) -> None:
    """Counts of missing triggers came with this version: a session stored before has
    none, and the engine then asks of each trigger whether it fired."""
    storage = make()
    manager = TriggerManager(storage)
    manager.update_configuration({"t": {"after": ["a", "b", "c"], "run": "tests.noop"}})
    client.delete(storage.keys.mc)
    for trigger in ("a", "b"):
        TriggerManager(make(storage.uid)).fire(trigger)
        manager.fire(trigger)
    assert [(i.name, i.status) for i in storage] == [("t#0", "unstarted")]
    TriggerManager(make(storage.uid)).fire("c")
    assert [(i.name, i.status) for i in storage] == [("t#0", "finished")]
    assert client.exists(storage.keys.mc) == 0
    manager.update_configuration({"u": {"after": ["a", "d"], "run": "tests.noop"}})
    assert client.hgetall(storage.keys.mc) == {b"t": b"0", b"u": b"1"}


def test_a_commit_sent_twice_is_applied_once(make: Callable[..., RedisStorageBackend]) -> None:
    class Resending(RedisStorageBackend):
        """Sends every commit twice, as a client does that lost the first reply."""

        def _call_script(self, mode: str, plan: Plan, payload: Any = (),
                         turn: Any = None) -> list[Any]:
            reply = super()._call_script(mode, plan, payload, turn)
            if mode == "c":
                reply = super()._call_script(mode, plan, payload, turn)
                assert reply[0] == b"done"
            return reply

    storage = make(cls=Resending)
    manager = TriggerManager(storage)
    manager.update_configuration({"t": {"after": ["go"], "andEvery": "tick", "run": "tests.noop"}})
    for number in range(3):
        manager.fire("tick", {"n": number})
    manager.fire("go")
    assert [i.kwargs["tick"] for i in storage.instances_of_task("t")] == [
        {"n": 0}, {"n": 1}, {"n": 2}]
    assert all(i.status == "finished" for i in storage)
    assert storage.is_finalized


def test_kwargs_too_large_to_come_with_a_read(make: Callable[..., RedisStorageBackend]) -> None:
    ours = make()
    big = {"text": "x" * 20_000}
    TriggerManager(ours).update_configuration({"t": {"after": ["big", "small"],
                                                     "run": "tests.echo"}})
    TriggerManager(ours).fire("big", big)
    TriggerManager(make(ours.uid)).fire("small", {"s": 1})  # a fresh process's first read
    assert ours["t#0"].kwargs == {"big": big, "small": {"s": 1}}


def test_what_a_process_knows_of_a_session_stays_bounded(
        make: Callable[..., RedisStorageBackend]) -> None:
    from triggerhooks.storages.redis import cache as backend

    storage = make()
    manager = TriggerManager(storage)
    manager.update_configuration({"t": {"after": ["a", "x-5"], "run": "tests.noop"}})
    manager.fire("a", {"big": "y" * 1000})
    for number in range(backend.CACHED_FACTS + 10):
        manager.fire(f"x-{number}")
    known = storage._session_cache().facts
    assert known is not None
    assert len(known.fired) <= backend.CACHED_FACTS and len(known.index) <= backend.CACHED_FACTS
    assert storage["t#0"].kwargs == {"a": {"big": "y" * 1000}, "x-5": {}}


# -- TTL --------------------------------------------------------------------------------------------


def test_ttl_is_refreshed_on_every_write(make: Callable[..., RedisStorageBackend],
                                         client: redis.Redis) -> None:
    storage = make(ttl=60)
    manager = TriggerManager(storage)
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.noop"}})
    client.pexpire(storage.keys[0], 1000)
    manager.fire("a")
    ttls = [client.pttl(key) for key in storage.keys if client.exists(key)]
    assert len(ttls) == 9 and all(55_000 < ttl <= 60_000 for ttl in ttls)
    assert open_reference(storage.reference()).ttl == 60  # type: ignore[attr-defined]


def test_an_expired_session_is_gone(make: Callable[..., RedisStorageBackend],
                                    client: redis.Redis) -> None:
    storage = make(ttl=0.3)
    manager = TriggerManager(storage)
    manager.update_configuration({"t": {"after": ["a", "b"], "run": "tests.noop"}})
    manager.fire("a")
    wait_for(lambda: not client.exists(*storage.keys), timeout=10, message="the session to expire")
    assert storage.debug_repr() == {"uid": storage.uid, "tasks": {}, "instances": {},
                                    "latestKwargs": {}, "metadata": {}}
    manager.fire("b")  # what this process knew of the session is not trusted
    assert storage.latest_kwargs == {"b": {}} and storage.instances == {}


# -- URLs, clients and errors -------------------------------------------------------------------------


def test_urls_and_clients(redis_prefix: str) -> None:
    storage = open_storage(f"redis://:pw@127.0.0.1:6379/3?prefix={redis_prefix}&ttl=9"
                           "&socket_timeout=5", "s")
    assert isinstance(storage, RedisStorageBackend)
    assert (storage.prefix, storage.ttl) == (redis_prefix, 9.0)
    assert storage.url == "redis://:pw@127.0.0.1:6379/3?socket_timeout=5"
    assert "pw" not in repr(storage)
    assert storage.reference()["url"] == "redis://127.0.0.1:6379/3?socket_timeout=5"
    assert isinstance(open_storage("unix:///tmp/redis.sock?db=2", "s"), RedisStorageBackend)
    assert isinstance(open_storage("rediss://host:6380/0", "s"), RedisStorageBackend)
    with pytest.raises(ValueError, match="decode_responses=False"):
        RedisStorageBackend("s", client=redis.Redis(decode_responses=True))
    with pytest.raises(ValueError, match="either url or client"):
        RedisStorageBackend("s", REDIS_URL, client=redis.Redis())
    with pytest.raises(ValueError, match="ttl must be"):
        RedisStorageBackend("s", ttl=0)
    tls = RedisStorageBackend("s", client=redis.Redis(host="h", port=7, db=2, ssl=True))
    assert tls.url == "rediss://h:7/2"


def test_a_reference_carries_no_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REDIS_URL_ENV, "redis://:envpw@127.0.0.1:6379/0")
    monkeypatch.delenv(STORAGE_URL_ENV, raising=False)
    storage = RedisStorageBackend("s", "redis://:argpw@127.0.0.1:6379/5")
    reference = storage.reference()
    assert "argpw" not in str(reference)
    assert (reference["url"], reference["secretWithheld"]) == ("redis://127.0.0.1:6379/5", True)
    # A worker without a password for that address says so, rather than connect without one.
    with pytest.raises(StorageUnavailableError, match="leaves its password out"):
        open_reference(reference)
    monkeypatch.setenv(STORAGE_URL_ENV, "redis://:argpw@127.0.0.1:6379/5?prefix=p")
    assert open_reference(reference).url == "redis://:argpw@127.0.0.1:6379/5"  # type: ignore[attr-defined]
    default = RedisStorageBackend("s")
    assert default.url == "redis://:envpw@127.0.0.1:6379/0"
    assert open_reference(default.reference()).url == default.url  # type: ignore[attr-defined]


def test_redis_down_gives_a_clear_error_without_the_password() -> None:
    port = free_port()
    storage = RedisStorageBackend("s", f"redis://:sekret@127.0.0.1:{port}/0")
    with pytest.raises(StorageUnavailableError) as raised:
        TriggerManager(storage).fire("a")
    message = str(raised.value)
    assert f"Redis at redis://:***@127.0.0.1:{port}/0 is unavailable" in message
    assert "sekret" not in message
    with pytest.raises(StorageUnavailableError, match="unavailable"):
        storage.latest_kwargs  # noqa: B018
