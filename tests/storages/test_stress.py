"""Hostile concurrency on the durable backends: what many writers at once must not break.

Real processes (multiprocessing, spawn) and threads fire into one session while
tasks run, cascade, are vetoed, replayed, skipped and reconfigured; every task
run appends its instance name to a file (``tests.record``), so runs are counted
across processes. Each test ends by checking the session against itself: the
stored counters agree with the instances, nothing pending is left behind, the
session finalized exactly once.

The tests after them pin the interleavings these stress tests ran into, one
transition at a time (as ``test_redis.py`` does), so that each fails every time
rather than now and then; each says how things went wrong before the fix.
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import os
import queue
import resource
import sqlite3
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.backends import REDIS_URL
from tests.helpers import settle
from triggerhooks import RedisStorageBackend, TriggerManager, trigger_task
from triggerhooks.serialization import JsonDict
from triggerhooks.signals import post_fire, session_finalized
from triggerhooks.storages import Plan, SessionView, SqliteStorageBackend, StorageBackend, open_reference
from triggerhooks.task import TaskContext
from triggerhooks.testing import HoldingRunner, connected, holding_runner

BOTH = pytest.mark.parametrize("backend", ["sqlite", "redis"], indirect=True)
DEADLINE = 120.0
"""Seconds a spawned process may take before the test fails."""

# -- helpers ----------------------------------------------------------------------------------------


def _start(target: Callable[..., None], *args: Any, count: int) -> tuple[list[Any], Any]:
    """``count`` spawned processes running ``target(number, barrier, *args)``; the barrier
    has a place for the test too."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(count + 1)
    processes = [ctx.Process(target=target, args=(number, barrier, *args)) for number in range(count)]
    for process in processes:
        process.start()
    return processes, barrier


def _join(processes: list[Any]) -> None:
    for process in processes:
        process.join(timeout=DEADLINE)
    assert [p.exitcode for p in processes] == [0] * len(processes)


def _spawn(target: Callable[..., None], *args: Any, count: int) -> None:
    processes, barrier = _start(target, *args, count=count)
    barrier.wait(timeout=60)
    _join(processes)


def _lines(path: Path) -> Counter[str]:
    return Counter(path.read_text().split()) if path.exists() else Counter()


def _append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as file:
        file.write(line + "\n")


def _stored_counters(storage: StorageBackend) -> tuple[int, int]:
    """The session's ``counted`` and ``unresolved`` counters as the backend stores them."""
    if isinstance(storage, RedisStorageBackend):
        client = redis.Redis.from_url(REDIS_URL)
        try:
            counted, unresolved = client.hmget(storage.keys.meta, "counted", "unresolved")
        finally:
            client.close()
        return int(counted or 0), int(unresolved or 0)
    assert isinstance(storage, SqliteStorageBackend)
    with sqlite3.connect(storage.path) as conn:
        row = conn.execute("SELECT counted, unresolved FROM th_sessions WHERE uid = ?",
                           (storage.uid,)).fetchone()
    conn.close()
    return int(row[0]), int(row[1])


def _assert_consistent(storage: StorageBackend) -> None:
    """The counters, the task states and the instances tell one story."""
    instances = list(storage)
    assert len(storage) == len(instances)
    unresolved = {i.name for i in instances if not i.is_resolved}
    assert {i.name for i in storage.get_unresolved_instances()} == unresolved
    counted = [c for c in storage.tasks.values() if not c.waits_for_finalization]
    open_tasks = [c for c in storage.get_unresolved_tasks() if not c.waits_for_finalization]
    assert _stored_counters(storage) == (len(counted), len(open_tasks))


def _finalized_log(path: str) -> Callable[..., None]:
    def receiver(sender: Any, session_uid: str, **kwargs: Any) -> None:
        _append(path, session_uid)
    return receiver


# -- eight processes: fan-in, cascades, andEvery around its readiness flip -------------------------

PROCESSES = 8
FAN = 40
"""Fan-in triggers each process fires."""
TICKS = 25
"""andEvery ticks each process fires."""
GATE = (1, 12)
"""Process 1 fires the last ``after`` trigger of the ticked task before its 12th tick."""
FAN_TRIGGERS = [f"f{p}_{k}" for p in range(PROCESSES) for k in range(FAN)]


def _session(p: int, ref: JsonDict, warm: TriggerManager | None) -> TriggerManager:
    """Even processes keep one manager (warm); odd ones open the session for every fire (cold)."""
    return warm if warm is not None else TriggerManager(open_reference(ref))


def _eight(number: int, barrier: Any, ref: JsonDict, finalized: str) -> None:
    import tests.tasks  # noqa: F401 - registers the tasks in this process

    warm = TriggerManager(open_reference(ref)) if number % 2 == 0 else None
    with connected(_finalized_log(finalized), session_finalized):
        barrier.wait(timeout=60)
        for k in range(max(FAN, TICKS)):
            if k < FAN:
                _session(number, ref, warm).fire(f"f{number}_{k}", {"p": number, "k": k})
            if (number, k) == GATE:  # ticks before, during and after the readiness flip
                _session(number, ref, warm).fire("gate", {"by": number})
            if k < TICKS:
                _session(number, ref, warm).fire("tick", {"p": number, "k": k})
        _session(number, ref, warm).fire(f"done{number}")


def _eight_configuration(record: JsonDict) -> dict[str, Any]:
    def task(after: list[str], **directives: Any) -> dict[str, Any]:
        return {"after": after, "run": "tests.record", "withParams": record, **directives}

    owns = [f"own{p}" for p in range(PROCESSES)]
    return {
        "fan": task(FAN_TRIGGERS),
        "c1": task(["fan"]), "c2": task(["c1"]), "c3": task(["c2"]),
        **{f"own{p}": task([f"f{p}_{FAN - 1}"]) for p in range(PROCESSES)},
        "join": task(["c3", *owns]),
        "every": task(["start", "gate"], andEvery="tick"),
        "each": task([], andEvery="every"),
        "final": task([f"done{p}" for p in range(PROCESSES)]),
        "report": task(["sessionFinalized"]),
    }


def _ticks(instances: list[Any]) -> list[tuple[int, int]]:
    return sorted((i.kwargs["tick"]["p"], i.kwargs["tick"]["k"]) for i in instances)


@pytest.mark.slow
@BOTH
def test_eight_processes_fan_in_cascades_and_ticks(storage: StorageBackend, tmp_path: Path) -> None:
    """Eight processes, half keeping one manager (warm), half opening the session for every
    fire (cold): a fan-in over 320 triggers, a chain of cascades into a fan-in of cascades,
    andEvery ticks around the readiness flip, and a task once per finished tick instance."""
    runs = tmp_path / "runs.log"
    finalized = tmp_path / "finalized.log"
    manager = TriggerManager(storage)
    manager.update_configuration(_eight_configuration({"record": {"path": str(runs)}}))
    manager.fire("start")
    _spawn(_eight, storage.reference(), str(finalized), count=PROCESSES)

    fired = storage.latest_kwargs
    assert {t: fired[t] for t in FAN_TRIGGERS} == {
        f"f{p}_{k}": {"p": p, "k": k} for p in range(PROCESSES) for k in range(FAN)}
    everything = [(p, k) for p in range(PROCESSES) for k in range(TICKS)]
    every = storage.instances_of_task("every")
    assert _ticks(every) == everything  # one instance per firing, with that firing's kwargs
    assert {i.status.value for i in every} == {"finished"}
    assert all(i.kwargs["gate"] == {"by": GATE[0]} for i in every)
    each = storage.instances_of_task("each")
    assert sorted(i.kwargs["every"]["ran"] for i in each) == sorted(i.name for i in every)
    assert {i.status.value for i in each} == {"finished"}
    once = ["fan#0", "c1#0", "c2#0", "c3#0", "join#0", "final#0", "report#0",
            *[f"own{p}#0" for p in range(PROCESSES)]]
    assert _lines(runs) == Counter([*once, *(i.name for i in [*every, *each])])
    assert storage["fan#0"].kwargs == {**{t: fired[t] for t in FAN_TRIGGERS},
                                       "record": {"path": str(runs)}}
    assert storage.get_unresolved_instances() == []
    assert storage.is_finalized
    assert _lines(finalized) == Counter({storage.uid: 1})
    _assert_consistent(storage)


# -- a veto while another process works through the backlog the readiness flip scheduled -----------

VETOED = 4
"""Processes: 0 to 2 fire VETO_TICKS ticks before the flip, 1 then runs the backlog as a worker
would, 3 vetoes the task once part of it ran, 0 and 2 fire more ticks after the veto."""
VETO_TICKS = 30
LATE_TICKS = 5
HALFWAY = 10
"""Instances of the backlog run before the veto."""


def _veto_role(number: int, manager: TriggerManager, events: dict[str, Any],
               held: type[HoldingRunner]) -> None:
    if number == 3:
        manager.fire("stop_a")
        events["stop_a"].set()
        assert events["halfway"].wait(timeout=60)
        manager.fire("stop_b")
        events["vetoed"].set()
    elif number == 1:
        assert events["stop_a"].wait(timeout=60)
        manager.fire("gate")  # schedules the backlog: this process's worker takes it
        backlog = held.names()
        for name in backlog[:HALFWAY]:
            assert manager.execute(name) is not None
        events["halfway"].set()
        assert events["vetoed"].wait(timeout=60)
        for name in backlog[HALFWAY:]:
            assert manager.execute(name) is None  # abandoned meanwhile
    else:
        assert events["vetoed"].wait(timeout=60)
        for k in range(VETO_TICKS, VETO_TICKS + LATE_TICKS):
            manager.fire("tick", {"p": number, "k": k})  # vetoed: its instance is abandoned


def _veto_worker(number: int, barrier: Any, ref: JsonDict, finalized: str,
                 events: dict[str, Any], configuration: dict[str, Any]) -> None:
    import tests.tasks  # noqa: F401 - registers the tasks in this process

    with holding_runner("held") as held, connected(_finalized_log(finalized), session_finalized):
        manager = TriggerManager(open_reference(ref))
        if number == 3:  # the application's process that configures the session when it starts
            manager.update_configuration(configuration)
        barrier.wait(timeout=60)
        for k in range(VETO_TICKS if number != 3 else 0):
            manager.fire("tick", {"p": number, "k": k})  # a backlog: "gate" has not fired
        events["ticked"].wait(timeout=60)
        _veto_role(number, manager, events, held)
        manager.fire(f"done{number}")


VETO_RACE = (
    "How it went wrong before it was fixed (the test forces that interleaving): "
    "Redis: abandon_pending() takes the instances to abandon from the task state's open map, "
    "and claiming or finishing an instance does not move the state's version. A veto computed "
    "on what this process knew (the backlog, read as pending when it fired stop_a) reads the "
    "instances themselves afresh, so the commit's checks pass, and overwrites the instances "
    "another process ran and finished meanwhile with 'abandoned' (their result stays, their "
    "cascade fired).")


@pytest.mark.slow
@BOTH
def test_a_veto_while_another_process_works_through_the_backlog(
        storage: StorageBackend, held: type[HoldingRunner], tmp_path: Path) -> None:
    runs = tmp_path / "runs.log"
    finalized = tmp_path / "finalized.log"
    record = {"record": {"path": str(runs)}}
    configuration = {
        "veto": {"after": ["start", "gate"], "andEvery": "tick", "unless": ["stop_a", "stop_b"],
                 "run": "tests.record", "withParams": record, "using": "held"},
        "final": {"after": [f"done{p}" for p in range(VETOED)], "run": "tests.record",
                  "withParams": record}}
    manager = TriggerManager(storage)
    manager.update_configuration(configuration)
    manager.fire("start")
    ctx = multiprocessing.get_context("spawn")
    events = {"ticked": ctx.Barrier(VETOED), "stop_a": ctx.Event(), "halfway": ctx.Event(),
              "vetoed": ctx.Event()}
    _spawn(_veto_worker, storage.reference(), str(finalized), events, configuration, count=VETOED)

    veto = storage.instances_of_task("veto")
    late = [(p, k) for p in (0, 2) for k in range(VETO_TICKS, VETO_TICKS + LATE_TICKS)]
    assert _ticks(veto) == sorted(
        [(p, k) for p in range(VETOED - 1) for k in range(VETO_TICKS)] + late)
    ran = _lines(runs)
    assert len(ran) == HALFWAY + 1 and ran["final#0"] == 1
    assert {i.name: i.status.value for i in veto} == {
        i.name: "finished" if i.name in ran else "abandoned" for i in veto}
    assert storage.get_unresolved_instances() == []
    assert storage.is_finalized
    assert _lines(finalized) == Counter({storage.uid: 1})
    _assert_consistent(storage)


# -- threads: the threading runner with many ticks, the readiness flip among them -----------------

THREAD_LOAD = {"sqlite": (4, 12), "redis": (6, 30)}
"""Firing threads and ticks each: fewer on SQLite, whose writers starve under hundreds of task
threads (see test_a_burst_of_task_threads_on_sqlite_waits_its_turn)."""
THREAD_GATE = 5


def _ticking(manager: TriggerManager, number: int, ticks: int, start: threading.Barrier) -> None:
    ref = manager.storage.reference()
    start.wait(timeout=30)
    for k in range(ticks):
        session = manager if number % 2 == 0 else TriggerManager(open_reference(ref),
                                                                 task_runner="threading")
        if (number, k) == (0, THREAD_GATE):
            session.fire("gate", {"k": k})
        session.fire("tick", {"p": number, "k": k})
    manager.fire(f"t{number}")


STALE_STATE = (
    "How it went wrong before it was fixed (the test forces that interleaving): "
    "Redis: a commit that renumbered its andEvery instance teaches this process's cache the "
    "task state it computed (its read plus its own instance) under the version it read plus one; "
    "another writer's instance is missing from that state, yet stays cached at the same version. "
    "Its completion, computed on that cache, writes a state delta without removing it from the "
    "task's open instances (the delta only removes names the stale state had): the instance "
    "is finished but its task stays unresolved, listed by get_unresolved_instances(), and the "
    "session never finalizes.")


@pytest.mark.slow
@BOTH
def test_threading_runner_with_ticks_from_many_threads(storage: StorageBackend, backend: str,
                                                       tmp_path: Path) -> None:
    threads_count, ticks = THREAD_LOAD[backend]
    runs = tmp_path / "runs.log"
    record = {"record": {"path": str(runs)}}
    manager = TriggerManager(storage, task_runner="threading")
    manager.update_configuration({
        "every": {"after": ["start", "gate"], "andEvery": "tick", "run": "tests.record",
                  "withParams": record},
        "each": {"andEvery": "every", "run": "tests.record", "withParams": record},
        "all": {"after": ["every", *[f"t{n}" for n in range(threads_count)]], "run": "tests.record",
                "withParams": record},
    })
    manager.fire("start")
    finalized: list[str] = []
    start = threading.Barrier(threads_count)
    with connected(lambda sender, session_uid, **kw: finalized.append(session_uid),
                   session_finalized):
        threads = [threading.Thread(target=_ticking, args=(manager, n, ticks, start))
                   for n in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=DEADLINE)
        settle(DEADLINE)

    every = storage.instances_of_task("every")
    assert _ticks(every) == [(p, k) for p in range(threads_count) for k in range(ticks)]
    each = storage.instances_of_task("each")
    assert len(each) == len(every)
    assert sorted(i.kwargs["every"]["ran"] for i in each) == sorted(i.name for i in every)
    assert {i.status.value for i in [*every, *each]} == {"finished"}
    assert _lines(runs) == Counter(["all#0", *(i.name for i in [*every, *each])])
    assert storage.get_unresolved_instances() == []
    assert storage.is_finalized and finalized == [storage.uid]
    _assert_consistent(storage)


# -- reconfiguration while other processes finish instances -------------------------------------

RECONFIGURED = 120
"""andEvery tasks, each with one instance left for the workers to run."""


def _execute_share(number: int, barrier: Any, ref: JsonDict, names: list[str], workers: int,
                   done: Any) -> None:
    """Run this worker's share of ``names`` (as a worker of another runner would)."""
    import tests.tasks  # noqa: F401 - registers the tasks in this process

    manager = TriggerManager(open_reference(ref))
    barrier.wait(timeout=60)
    for name in names[number::workers]:
        assert manager.execute(name) is not None
        with done.get_lock():
            done.value += 1


COUNTERS_RACE = (
    "How it went wrong before it was fixed (the test forces that interleaving): "
    "Redis: a configuration commit writes the session's 'unresolved' counter as an absolute "
    "value computed from its full read, but checks only the task versions, which finishing an "
    "instance does not move (nor the fired count, when the cascade trigger had fired before). "
    "An instance that resolves its task between that read and the commit is counted unresolved "
    "again for good: the counter stays above the truth and the session never finalizes.")


@pytest.mark.slow
@BOTH
def test_reconfiguration_while_other_processes_finish_instances(
        storage: StorageBackend, held: type[HoldingRunner], tmp_path: Path) -> None:
    runs = tmp_path / "runs.log"
    manager = TriggerManager(storage)
    tasks = [f"e{n}" for n in range(RECONFIGURED)]
    manager.update_configuration({
        **{task: {"after": ["start"], "andEvery": f"tick{n}", "run": "tests.noop", "using": "held"}
           for n, task in enumerate(tasks)},
        "last": {"after": ["end"], "run": "tests.noop"}})
    manager.fire("start")
    for n, task in enumerate(tasks):  # each task fired its name once: its next run fires nothing new
        manager.fire(f"tick{n}")
        manager.execute(f"{task}#0")
        manager.fire(f"tick{n}")
    names = [f"{task}#1" for task in tasks]
    done = multiprocessing.get_context("spawn").Value("i", 0)
    processes, barrier = _start(_execute_share, storage.reference(), names, 2, done, count=2)
    barrier.wait(timeout=60)
    added: list[str] = []
    while not added or done.value < RECONFIGURED // 2:  # while the workers finish instances
        added.append(f"added{len(added)}")
        manager.update_configuration({added[-1]: {"after": ["start"], "run": "tests.record",
                                                  "withParams": {"record": {"path": str(runs)}}}})
    _join(processes)
    manager.fire("end")

    assert added and _lines(runs) == Counter(f"{name}#0" for name in added)
    assert {i.status.value for i in storage} == {"finished"}
    assert storage.get_unresolved_tasks() == []
    assert _stored_counters(storage) == (RECONFIGURED + 1 + len(added), 0)
    assert storage.is_finalized
    _assert_consistent(storage)


# -- two processes merge metadata into one instance while it runs -----------------------------------

MERGES = 60


def _merge_metadata(number: int, barrier: Any, ref: JsonDict, name: str) -> None:
    manager = TriggerManager(open_reference(ref))
    barrier.wait(timeout=60)
    for k in range(MERGES):
        manager.update_instance_metadata(name, {f"p{number}_{k}": k})


@pytest.mark.slow
@BOTH
def test_two_processes_merge_metadata_into_an_instance_while_it_runs(
        storage: StorageBackend, held: type[HoldingRunner]) -> None:
    manager = TriggerManager(storage)
    manager.update_configuration({"t": {"after": ["go"], "run": "tests.echo", "using": "held"}})
    manager.fire("go", {"n": 1})
    processes, barrier = _start(_merge_metadata, storage.reference(), "t#0", count=2)
    barrier.wait(timeout=60)
    finished = manager.execute("t#0")  # a worker claims and runs it meanwhile
    _join(processes)

    assert finished is not None and finished.status.value == "finished"
    instance = storage["t#0"]
    assert instance.status.value == "finished"
    assert {key: value for key, value in instance.metadata.items() if key.startswith("p")} == {
        f"p{n}_{k}": k for n in range(2) for k in range(MERGES)}
    assert instance.metadata["result"] == {"received": {"go": {"n": 1}}}
    assert storage.is_finalized
    _assert_consistent(storage)


# -- failed instances replayed and skipped while other processes fire --------------------------------

FRAGILE_TICKS = 30


def _tick_then_done(number: int, barrier: Any, ref: JsonDict) -> None:
    import tests.tasks  # noqa: F401 - registers the tasks in this process

    manager = TriggerManager(open_reference(ref))
    barrier.wait(timeout=60)
    for k in range(FRAGILE_TICKS):
        manager.fire("tick", {"p": number, "k": k})
    manager.fire(f"done{number}")


def _replay_or_skip_failed(manager: TriggerManager) -> int:
    """Replay each failed original, skip (with its cascade) each failed copy; how many."""
    failed = [i for i in manager.storage.get_unresolved_instances() if i.status.value == "failed"]
    for instance in failed:
        if "parent" in instance.metadata:
            manager.skip_failed_instance(instance, cascade=True, result={"skipped": instance.name})
        else:
            manager.replay_failed_instance(instance)
    return len(failed)


@pytest.mark.slow
@BOTH
def test_replays_and_skips_while_other_processes_fire(storage: StorageBackend, tmp_path: Path) -> None:
    runs = tmp_path / "runs.log"
    record = {"record": {"path": str(runs)}}
    manager = TriggerManager(storage)
    manager.update_configuration({
        "fragile": {"after": ["start"], "andEvery": "tick", "run": "tests.boom"},
        "first": {"after": ["fragile"], "run": "tests.record", "withParams": record},
        "each": {"andEvery": "fragile", "run": "tests.record", "withParams": record},
        "final": {"after": ["done0", "done1", "cleaned"], "run": "tests.record", "withParams": record},
    })
    manager.fire("start")
    processes, barrier = _start(_tick_then_done, storage.reference(), count=2)
    barrier.wait(timeout=60)
    deadline = threading.Event()
    timer = threading.Timer(DEADLINE, deadline.set)
    timer.start()
    try:
        while not deadline.is_set():
            alive = any(p.is_alive() for p in processes)
            if not _replay_or_skip_failed(manager) and not alive:
                break
    finally:
        timer.cancel()
    assert not deadline.is_set()
    _join(processes)
    manager.fire("cleaned")

    fragile = storage.instances_of_task("fragile")
    originals = [i for i in fragile if "parent" not in i.metadata]
    copies = [i for i in fragile if "parent" in i.metadata]
    assert _ticks(originals) == [(p, k) for p in range(2) for k in range(FRAGILE_TICKS)]
    assert {i.status.value for i in originals} == {"replayed"}
    assert {i.status.value for i in copies} == {"skipped"}
    assert sorted(i.metadata["parent"] for i in copies) == sorted(i.name for i in originals)
    each = storage.instances_of_task("each")
    assert sorted(i.kwargs["fragile"]["skipped"] for i in each) == sorted(i.name for i in copies)
    assert _lines(runs) == Counter(["first#0", "final#0", *(i.name for i in each)])
    assert storage.get_unresolved_instances() == []
    assert storage.is_finalized
    _assert_consistent(storage)


# -- the interleavings behind the failures above, one transition at a time (Redis) ------------------


@pytest.fixture
def on_redis(redis_prefix: str) -> Iterator[Callable[..., RedisStorageBackend]]:
    """Storages of one fresh Redis session: by default on this process's client for the URL
    (so sharing what the process knows of the session, as its threads do); with
    ``own_cache`` on a client of their own (as another process)."""
    uid = f"stress-{os.urandom(6).hex()}"
    made: list[RedisStorageBackend] = []
    clients: list[redis.Redis] = []

    def build(cls: type[RedisStorageBackend] = RedisStorageBackend,
              own_cache: bool = False) -> RedisStorageBackend:
        if own_cache:
            clients.append(redis.Redis.from_url(REDIS_URL))
            storage = cls(uid, client=clients[-1], prefix=redis_prefix)
        else:
            storage = cls(uid, REDIS_URL, prefix=redis_prefix)
        made.append(storage)
        return storage

    yield build
    if made:
        made[0].clear()
    for client in clients:
        client.close()


class Interleaved(RedisStorageBackend):
    """Runs ``interfere()`` once, while its next transition computes: between its read and
    its commit, as another process's writes land."""

    interfere: Callable[[], None] | None = None

    def transact(self, plan: Plan, compute: Callable[[SessionView], Any]) -> Any:
        def interleaved(view: SessionView) -> Any:
            interfere, self.interfere = self.interfere, None
            if interfere is not None:
                interfere()
            return compute(view)

        return super().transact(plan, interleaved)


def test_a_configuration_racing_a_finishing_instance_keeps_the_counters(
        on_redis: Callable[..., RedisStorageBackend], held: type[HoldingRunner]) -> None:
    ours = on_redis(Interleaved)
    theirs = on_redis(own_cache=True)
    manager = TriggerManager(ours)
    manager.update_configuration({
        "e": {"after": ["go"], "andEvery": "tick", "run": "tests.noop", "using": "held"},
        "last": {"after": ["end"], "run": "tests.noop"}})
    manager.fire("go")
    manager.fire("tick")
    manager.fire("tick")
    TriggerManager(theirs).execute("e#0")  # "e" fired: e#1 finishing fires nothing new
    assert isinstance(ours, Interleaved)
    ours.interfere = lambda: TriggerManager(theirs).execute("e#1")  # read: e unresolved
    manager.update_configuration({"x": {"after": ["go"], "run": "tests.noop"}})
    manager.fire("end")
    assert [(i.name, i.status.value) for i in ours] == [
        ("e#0", "finished"), ("e#1", "finished"), ("x#0", "finished"), ("last#0", "finished")]
    assert _stored_counters(ours) == (3, 0)
    assert ours.is_finalized


def test_a_veto_computed_on_what_a_process_knew_leaves_finished_instances_alone(
        on_redis: Callable[..., RedisStorageBackend], held: type[HoldingRunner]) -> None:
    ours = TriggerManager(on_redis(own_cache=True))
    theirs = TriggerManager(on_redis(own_cache=True))
    ours.update_configuration({"v": {"after": ["start"], "andEvery": "tick",
                                     "unless": ["stop_a", "stop_b"], "run": "tests.noop",
                                     "using": "held"}})
    ours.fire("start")
    theirs.fire("tick")  # v#0, scheduled
    ours.fire("stop_a")  # ours reads v's state afresh: v#0 pending
    assert theirs.execute("v#0") is not None  # v#0 runs and finishes elsewhere
    ours.fire("stop_b")  # the veto, computed on what ours knew
    assert [(i.name, i.status.value) for i in ours.storage] == [("v#0", "finished")]
    assert ours.storage["v#0"].metadata["result"] == {}


class Learning(RedisStorageBackend):
    """Runs ``between()`` once, when a commit of a transition of ``trigger`` has answered
    and before this process takes in what it wrote: where another thread's read lands."""

    trigger = ""
    between: Callable[[], None] | None = None

    def _call_script(self, mode: str, plan: Plan, payload: Any = (), turn: Any = None) -> list[Any]:
        reply = super()._call_script(mode, plan, payload, turn)
        if mode == "c" and plan.trigger == self.trigger and reply[0] == b"ok" and self.between:
            between, self.between = self.between, None
            between()
        return reply


COUNT_LEARNED_TWICE = (
    "How it went wrong before it was fixed (the test forces that interleaving): "
    "Redis: after a commit a process lowers its cached count of a task's missing triggers by "
    "what the commit counted down (SessionCache.learn). A thread whose fresh read of the "
    "session lands between that commit and its learn() has already put the lowered count in the "
    "cache, so it is lowered twice: the fan-in counts as ready while 'q' has not fired. A later "
    "firing of one of its triggers, computed on the cache, schedules it with {} for 'q' (the "
    "commit checks only that 'q' is still unfired); a count below zero instead makes the real last "
    "trigger's commit skip both scheduling and the count check, and the fan-in is lost.")


def test_a_count_learned_twice_never_readies_a_fan_in_early(
        on_redis: Callable[..., RedisStorageBackend], held: type[HoldingRunner]) -> None:
    ours = on_redis(Learning)
    other = on_redis()  # this process's client: what it learns is what ours knows
    manager = TriggerManager(ours)
    manager.update_configuration({
        "p": {"after": ["go"], "run": "tests.noop", "using": "held"},
        "fan": {"after": ["p", "x", "q"], "run": "tests.echo", "using": "held"}})
    manager.fire("go")
    manager.fire("x", {"n": 1})
    assert isinstance(ours, Learning)
    ours.trigger = "p"
    ours.between = lambda: TriggerManager(other).fire("x", {"n": 2})
    manager.execute("p#0")  # p's cascade: the fan-in waits for q alone
    manager.fire("x", {"n": 3})
    # q has not fired: the fan-in waits, with the first firings it received
    assert [(i.status, i.kwargs) for i in ours.instances_of_task("fan")] == [
        ("unstarted", {"x": {"n": 1}, "p": {}})]
    manager.fire("q", {"n": 4})
    assert held.names() == ["p#0", "fan#0"]
    assert ours["fan#0"].kwargs == {"p": {}, "x": {"n": 1}, "q": {"n": 4}}


class Resending(RedisStorageBackend):
    """Sends its next commit twice, as redis-py does when a connection dropped before the
    reply came, with ``between()`` (other writers' commits) in between."""

    between: Callable[[], None] | None = None

    def _call_script(self, mode: str, plan: Plan, payload: Any = (), turn: Any = None) -> list[Any]:
        reply = super()._call_script(mode, plan, payload, turn)
        if mode == "c" and self.between:
            between, self.between = self.between, None
            between()
            reply = super()._call_script(mode, plan, payload, turn)
        return reply


def test_a_commit_resent_after_other_writers_commits_is_applied_once(
        on_redis: Callable[..., RedisStorageBackend]) -> None:
    """How it went wrong before the fix: the script remembered the ids of the last 8
    commits only (meta 'tx'). A commit re-sent after a lost reply once other writers made 8
    commits was checked and applied again: this andEvery firing got a second instance, and
    the first one, scheduled by the first application, was never handed off. Now each
    writer's last call number is kept for as long as the session."""
    ours = on_redis(Resending, own_cache=True)
    theirs = TriggerManager(on_redis(own_cache=True))
    manager = TriggerManager(ours)
    manager.update_configuration({"t": {"after": ["go"], "andEvery": "tick", "run": "tests.noop"}})
    manager.fire("go")
    assert isinstance(ours, Resending)
    ours.between = lambda: [theirs.fire("tick", {"from": "them", "n": n}) for n in range(4)]
    manager.fire("tick", {"from": "us"})
    ticks = [i.kwargs["tick"] for i in ours.instances_of_task("t")]
    assert sorted(map(str, ticks)) == sorted(map(str, [{"from": "us"}, *(
        {"from": "them", "n": n} for n in range(4))]))
    assert {i.status.value for i in ours} == {"finished"}


GATES: defaultdict[str, threading.Event] = defaultdict(threading.Event)
STARTED: queue.Queue[str] = queue.Queue()


@trigger_task(name="tests.stress.gated")
def gated(context: TaskContext) -> dict[str, Any]:
    """Says it started (its claim is committed and taken in), then runs until the test opens
    its gate: a test holds an instance ``running`` as long as it needs."""
    gate = GATES[context.task_instance.name]
    STARTED.put(context.task_instance.name)
    assert gate.wait(timeout=30)
    return {}


def test_an_instance_finished_after_a_renumbered_commit_resolves_its_task(
        on_redis: Callable[..., RedisStorageBackend], held: type[HoldingRunner]) -> None:
    ours = on_redis(Interleaved)
    theirs = TriggerManager(on_redis())  # another thread of this process: the same cache
    manager = TriggerManager(ours)
    manager.fire("tick", {"by": "nobody yet"})  # known fired: the next firings record nothing new
    manager.update_configuration({"t": {"after": ["go"], "andEvery": "tick",
                                        "run": "tests.stress.gated", "using": "held"}})
    manager.fire("go")

    def run(name: str) -> None:  # a worker thread claims it; it runs until its gate opens
        workers[name] = threading.Thread(target=theirs.execute, args=(name,))
        workers[name].start()
        assert STARTED.get(timeout=30) == name

    def finish(name: str) -> None:
        GATES[name].set()
        workers[name].join(timeout=DEADLINE)

    def tick_elsewhere() -> None:
        theirs.fire("tick", {"by": "them"})  # t#0
        run("t#0")

    workers: dict[str, threading.Thread] = {}
    assert isinstance(ours, Interleaved)
    ours.interfere = tick_elsewhere
    try:
        manager.fire("tick", {"by": "us"})  # computed as t#0, committed as t#1
        run("t#1")
        finish("t#0")
        finish("t#1")
    finally:
        for name in workers:
            finish(name)
        GATES.clear()
    assert [(i.name, i.status.value) for i in ours] == [("t#0", "finished"), ("t#1", "finished")]
    assert ours.get_unresolved_instances() == []
    assert ours.is_finalized


BURST = 200


def _slow_reply(seconds: float, sent: threading.Event) -> None:
    """Keep Redis busy for ``seconds`` (a slow command, a fork, a network hiccup)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        sent.set()
        client.eval("local s = redis.call('TIME') local t0 = s[1] * 1e6 + s[2] "
                    "repeat s = redis.call('TIME') until s[1] * 1e6 + s[2] - t0 > tonumber(ARGV[1])",
                    0, int(seconds * 1e6))
    finally:
        client.close()


def test_a_burst_of_task_threads_outlives_a_slow_redis_reply(
        on_redis: Callable[..., RedisStorageBackend]) -> None:
    storage = on_redis()
    manager = TriggerManager(storage, task_runner="threading")
    manager.update_configuration({"t": {"after": ["go"], "andEvery": "tick", "run": "tests.noop"}})
    for k in range(BURST):
        manager.fire("tick", {"k": k})
    sent = threading.Event()
    spike = threading.Thread(target=_slow_reply, args=(0.5, sent))

    def slow_down(sender: Any, trigger_name: str, **kwargs: Any) -> None:
        if trigger_name == "go":  # after the commit, before the hand-off
            spike.start()
            assert sent.wait(timeout=10)

    logging.getLogger("triggerhooks.runners.threading").disabled = True
    try:
        with connected(slow_down, post_fire):
            manager.fire("go")
        spike.join(timeout=DEADLINE)
        settle(DEADLINE)
    finally:
        logging.getLogger("triggerhooks.runners.threading").disabled = False
    assert Counter(i.status.value for i in storage) == Counter({"finished": BURST})


# -- SQLite: task threads and file descriptors ----------------------------------------------------

FEW_FILES = 256
"""A low limit of open files, so that what each task thread leaves open shows within a few
hundred tasks (at the usual 1024, after about a thousand)."""


def _tick_with_few_files(number: int, barrier: Any, ref: JsonDict, ticks: int) -> None:
    import tests.tasks  # noqa: F401 - registers the tasks in this process
    from triggerhooks.runners import ThreadingTaskRunner

    logging.disable(logging.CRITICAL)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(FEW_FILES, hard), hard))
    manager = TriggerManager(open_reference(ref), task_runner="threading")
    barrier.wait(timeout=60)
    for k in range(ticks):
        manager.fire("tick", {"k": k})
        if k % 20 == 19:  # never more than 20 task threads alive at once
            ThreadingTaskRunner.join_all(timeout=60)
    ThreadingTaskRunner.join_all(timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_task_threads_on_sqlite_do_not_run_out_of_files(storage: StorageBackend) -> None:
    ticks = 2 * FEW_FILES
    TriggerManager(storage).update_configuration(
        {"t": {"after": ["go"], "andEvery": "tick", "run": "tests.noop"}})
    TriggerManager(storage).fire("go")
    _spawn(_tick_with_few_files, storage.reference(), ticks, count=1)
    assert Counter(i.status.value for i in storage) == Counter({"finished": ticks})


SQLITE_BURST = 300


@pytest.mark.slow
def test_a_burst_of_task_threads_on_sqlite_waits_its_turn(tmp_path: Path) -> None:
    path = tmp_path / "triggerhooks.sqlite3"
    storage = SqliteStorageBackend("burst", path, timeout=3.0)
    manager = TriggerManager(storage, task_runner="threading")
    manager.update_configuration({"t": {"after": ["go"], "andEvery": "tick", "run": "tests.noop"}})
    for k in range(SQLITE_BURST):  # a backlog: handed off at once when "go" fires
        manager.fire("tick", {"k": k})
    other_writer = open(f"{path}-writers", "rb")  # noqa: SIM115 - held across the hand-off

    def hold_the_turn(sender: Any, trigger_name: str, **kwargs: Any) -> None:
        fcntl.flock(other_writer, fcntl.LOCK_EX)  # after the commit, before the hand-off

    logging.getLogger("triggerhooks.runners.threading").disabled = True
    try:
        with connected(hold_the_turn, post_fire):
            manager.fire("go")
        fcntl.flock(other_writer, fcntl.LOCK_UN)  # every task thread is waiting for its turn
        settle(DEADLINE)
    finally:
        other_writer.close()
        logging.getLogger("triggerhooks.runners.threading").disabled = False
    assert Counter(i.status.value for i in storage) == Counter({"finished": SQLITE_BURST})
