"""Recovery against real faults, on the durable backends: processes killed with SIGKILL mid-task,
between a commit and its hand-off, between a firing's record and its follow-up; a Redis
or PostgreSQL server of the test's own killed and restarted while writers fire; recoveries racing each
other and a running task; a forked child; a heartbeat while the storage is down.

Processes are spawned (``multiprocessing``, spawn); every task start is appended to a file
(``tests.recovery_helpers.Record``), so runs are counted across processes. Each test waits
for conditions with deadlines, never for a fixed time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import settle
from tests.pg_server import postgres_server
from tests.pg_server import unavailable as pg_unavailable
from tests.recovery_helpers import (
    RECORD,
    DroppingRunner,
    KillingRunner,
    append,
    open_work,
    record_only,
    redis_server,
    runs,
    started,
    with_record,
)
from triggerhooks import (
    PostgresStorageBackend,
    RedisStorageBackend,
    StorageUnavailableError,
    TaskStatus,
    TriggerManager,
    capture_signals,
    trigger_task,
)
from triggerhooks.core.leases import Lease, claim_of
from triggerhooks.core.recovery import Recovery
from triggerhooks.models import utcnow
from triggerhooks.runners import task_runners
from triggerhooks.serialization import JsonDict
from triggerhooks.signals import session_finalized
from triggerhooks.storages import POSTGRES_URL_ENV, Plan, StorageBackend, open_reference
from triggerhooks.task import TaskContext
from triggerhooks.testing import (
    HoldingRunner,
    expire_claim,
    holding_runner,
    registered_class,
    run_transition,
    wait_for,
)

BOTH = pytest.mark.parametrize("backend", ["sqlite", "redis", "postgresql"], indirect=True)
REDIS = pytest.mark.parametrize("backend", ["redis"], indirect=True)
DEADLINE = 90.0
"""Seconds a spawned process may take before the test fails."""
LEASE = 1.0
"""The lease of the processes that get killed: their instances are recoverable this soon."""
GRACE = 0.3

pytestmark = pytest.mark.slow  # real processes and servers


# -- processes ----------------------------------------------------------------------------------------


def spawn(target: Callable[..., None], *args: Any) -> Any:
    """One spawned process running ``target(*args)``."""
    process = multiprocessing.get_context("spawn").Process(target=target, args=args)
    process.start()
    return process


class Started(list[Any]):
    """Processes started together, and the barrier they share (kept alive while they run)."""

    barrier: Any = None


def spawn_many(target: Callable[..., None], *args: Any, count: int) -> Started:
    """``count`` processes running ``target(number, barrier, *args)``: they start together."""
    ctx = multiprocessing.get_context("spawn")
    started = Started()
    started.barrier = barrier = ctx.Barrier(count)
    started += [ctx.Process(target=target, args=(number, barrier, *args)) for number in range(count)]
    for process in started:
        process.start()
    return started


def join(processes: list[Any], exitcode: int = 0) -> None:
    for process in processes:
        process.join(timeout=DEADLINE)
    assert [p.exitcode for p in processes] == [exitcode] * len(processes)


@pytest.fixture
def reaper() -> Iterator[list[Any]]:
    """Processes (or pids) to kill at the end whatever happened, so no test leaves one behind."""
    found: list[Any] = []
    yield found
    for process in found:
        pid = process if isinstance(process, int) else process.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not isinstance(process, int):
            wait_for(lambda p=process: p.exitcode is not None, 10, "a killed process to end")


def kill(process: Any) -> None:
    """SIGKILL ``process`` and reap it (its exit status, not the end of its pipes: a child it
    forked may hold those)."""
    os.kill(process.pid, signal.SIGKILL)
    wait_for(lambda: process.exitcode is not None, 10, f"process {process.pid} to end")
    assert process.exitcode == -signal.SIGKILL


@pytest.fixture
def record(tmp_path: Path) -> Path:
    return tmp_path / "runs.log"


def chain(path: Path, **options: Any) -> dict[str, Any]:
    """``t`` after ``go`` (its ``withParams`` given ``options``), its cascade ``next``, and
    ``report`` once the session is finalized: each records its runs."""
    return {"t": {"after": ["go"], "run": RECORD, "withParams": with_record(path, **options)},
            "next": {"after": ["t"], "run": RECORD, "withParams": with_record(path)},
            "report": {"after": ["sessionFinalized"], "run": RECORD,
                       "withParams": with_record(path)}}


def worker_pid(worker: str | None) -> int:
    """The pid in a default worker name (``host:pid/thread``)."""
    assert worker is not None
    return int(worker.rsplit(":", 1)[1].split("/", 1)[0])


# -- 1. eight processes, an andEvery task and a fan-in, ten times ----------------------------------------

PROCESSES = 8
REPEATS = 10
TICKS = 3


def _eight(number: int, barrier: Any, refs: list[JsonDict], errors: str) -> None:
    import tests.recovery_helpers  # noqa: F401 - registers the tasks in this process

    for repeat, ref in enumerate(refs):
        barrier.wait(timeout=60)
        try:
            manager = TriggerManager(open_reference(ref))
            for k in range(TICKS):
                manager.fire("tick", {"p": number, "k": k})
                if (number, k) == (repeat % PROCESSES, 1):  # the readiness flip among ticks
                    manager.fire("start")
            manager.fire(f"p{number}", {"p": number})
        except Exception as exc:
            append(errors, f"{repeat} {number} {type(exc).__name__}: {exc!r}")


@BOTH
def test_eight_processes_firing_into_one_session_ten_times_run_everything_exactly_once(
        make_storage: Any, tmp_path: Path) -> None:
    sessions = []
    for repeat in range(REPEATS):
        storage = make_storage()
        record = with_record(tmp_path / f"runs-{repeat}.log")
        TriggerManager(storage).update_configuration({
            "every": {"after": ["start"], "andEvery": "tick", "run": RECORD, "withParams": record},
            "each": {"after": [], "andEvery": "every", "run": RECORD, "withParams": record},
            "fan": {"after": [f"p{n}" for n in range(PROCESSES)], "run": RECORD,
                    "withParams": record},
            "then": {"after": ["fan"], "run": RECORD, "withParams": record},
        })
        sessions.append(storage)
    errors = tmp_path / "errors.log"

    join(spawn_many(_eight, [s.reference() for s in sessions], str(errors), count=PROCESSES))

    assert not errors.exists(), errors.read_text()
    for repeat, storage in enumerate(sessions):
        every = storage.instances_of_task("every")
        assert sorted((i.kwargs["tick"]["p"], i.kwargs["tick"]["k"]) for i in every) == [
            (p, k) for p in range(PROCESSES) for k in range(TICKS)], repeat
        names = [i.name for i in storage]
        assert len(storage.instances_of_task("each")) == len(every)
        assert {"fan#0", "then#0"} <= set(names)
        assert open_work(storage) == {}, repeat
        assert {i.status.value for i in storage} == {"finished"}, repeat
        assert started(tmp_path / f"runs-{repeat}.log") == Counter(names), repeat  # once each
        assert storage.is_finalized
        manager = TriggerManager(storage, claim_grace_seconds=GRACE)
        assert manager.stuck() == [] and manager.recover() == []


# -- 2. the server (Redis, PostgreSQL) killed and restarted while writers fire -------------------------

WRITERS = 4


def _writer(number: int, barrier: Any, ref: JsonDict, stop: str, failures: str, out: str,
            keyed: bool) -> None:
    """Fire ticks until told to stop, retrying a fire that failed: with its key when the
    storage keeps keys; without one only when the error says nothing was committed."""
    import tests.recovery_helpers  # noqa: F401 - registers the tasks in this process

    manager = TriggerManager(open_reference(ref), lease_seconds=LEASE)
    outcomes: list[list[Any]] = []
    barrier.wait(timeout=60)
    k = 0
    while not os.path.exists(stop):
        deadline = time.monotonic() + 60
        while True:
            try:
                firing = manager.fire("tick", {"p": number, "k": k},
                                      key=f"{number}-{k}" if keyed else None)
                outcomes.append([k, "ok", firing.repeated])
                break
            except Exception as exc:
                committed = getattr(exc, "committed", "missing")
                outcomes.append([k, type(exc).__name__, committed])
                append(failures, f"{number} {k} {type(exc).__name__} {committed}")
                if time.monotonic() > deadline:
                    raise
                if committed is not False and not keyed:
                    break  # stored, or maybe: firing again without a key could store it twice
                time.sleep(0.02)
        k += 1
    Path(out, f"writer-{number}.json").write_text(json.dumps(outcomes))


def _fired_as(outcomes: list[list[Any]]) -> dict[int, list[list[Any]]]:
    by_tick: dict[int, list[list[Any]]] = {}
    for outcome in outcomes:
        by_tick.setdefault(outcome[0], []).append(outcome)
    return by_tick


@contextmanager
def killable(kind: str, directory: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, StorageBackend]]:
    """A server of the test's own (``kind``) and a storage on it. A PostgreSQL reference
    leaves the server's password out: the writers find it in their environment."""
    if kind == "redis":
        with redis_server(directory) as server:
            yield server, RedisStorageBackend("killed", server.url, prefix="faults")
        return
    reason = pg_unavailable()
    if reason:
        pytest.skip(reason)
    with postgres_server() as pg:
        monkeypatch.setenv(POSTGRES_URL_ENV, pg.url)
        yield pg, PostgresStorageBackend("killed", pg.url, pool_timeout=1)


@pytest.mark.parametrize("kind", ["redis", "postgresql"])
@pytest.mark.parametrize("keyed", [False, True], ids=["retried without a key", "with keys"])
def test_a_server_killed_and_restarted_while_writers_fire_loses_and_doubles_nothing(
        tmp_path: Path, reaper: list[Any], keyed: bool, kind: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    record = tmp_path / "runs.log"
    stop, failures = tmp_path / "stop", tmp_path / "failures.log"
    with killable(kind, tmp_path, monkeypatch) as (server, storage):
        manager = TriggerManager(storage, claim_grace_seconds=GRACE)
        manager.update_configuration({"every": {"after": ["start"], "andEvery": "tick",
                                                "run": RECORD, "withParams": with_record(record)}})
        manager.fire("start")
        writers = spawn_many(_writer, storage.reference(), str(stop), str(failures),
                             str(tmp_path), keyed, count=WRITERS)
        reaper.extend(writers)
        outs = [tmp_path / f"writer-{n}.json" for n in range(WRITERS)]
        wait_for(lambda: len(storage) >= 12, 60, "writers to fire")

        server.kill()  # SIGKILL, mid-run

        def every_writer_failed() -> bool:
            seen = {line.split()[0] for line in failures.read_text().splitlines()} \
                if failures.exists() else set()
            return len(seen) == WRITERS
        wait_for(every_writer_failed, 30, "every writer to see the server gone")
        server.start()  # the same port and data directory: the AOF comes back
        before = len(storage)
        wait_for(lambda: len(storage) >= before + 12, 60, "writers to fire after the restart")
        stop.touch()
        join(writers)

        def recovered() -> bool:
            manager.recover()
            return open_work(storage) == {}
        wait_for(recovered, 30, "a recovery to leave nothing scheduled or running")

        every = storage.instances_of_task("every")
        stored = Counter((i.kwargs["tick"]["p"], i.kwargs["tick"]["k"]) for i in every)
        for number, out in enumerate(outs):
            for k, tries in _fired_as(json.loads(out.read_text())).items():
                said = [outcome[2] for outcome in tries if outcome[1] != "ok"]
                assert all(committed in (True, False, None) for committed in said), tries
                if not keyed and None in said:
                    # "Unknown" (the server did not come back in time to ask): not fired
                    # again, so stored once or not at all — never twice.
                    assert stored[(number, k)] <= 1, (number, k, tries)
                else:
                    # Acknowledged, said to be committed, or fired again after "nothing was
                    # committed" (which is then true): exactly once.
                    assert stored[(number, k)] == 1, (number, k, tries)
        assert sum(stored.values()) == len(every)  # nothing stored that no writer fired
        assert {i.status.value for i in every} == {"finished"}
        assert set(started(record)) == {i.name for i in every}
        assert failures.read_text()


def test_a_hung_server_is_reported_after_one_timeout_not_after_each_retry(
        tmp_path: Path) -> None:
    with redis_server(tmp_path) as server:
        url = f"{server.url}?socket_timeout=1"
        TriggerManager(RedisStorageBackend("hung", url, prefix="faults")).update_configuration(
            {"t": {"after": ["go"], "run": "tests.noop"}})
        server.pause()  # SIGSTOP: connected, but nothing answers
        try:
            started = time.monotonic()
            with pytest.raises(StorageUnavailableError, match="Timeout"):
                RedisStorageBackend("hung", url, prefix="faults").get("t#0")
            waited = time.monotonic() - started
        finally:
            server.resume()
    # One timeout of 1 s: retrying the read 3 times more would wait 4 s and more.
    assert waited < 2.5, waited


def test_a_fire_whose_reply_was_lost_does_not_say_nothing_was_committed(
        tmp_path: Path, held: type[HoldingRunner]) -> None:
    with redis_server(tmp_path) as server:
        storage = RedisStorageBackend("stalled", f"{server.url}?socket_timeout=0.2",
                                      prefix="faults")
        manager = TriggerManager(storage, task_runner="held")
        manager.update_configuration({"page": {"after": [], "andEvery": "tick",
                                               "run": "tests.noop"}})
        manager.fire("tick", {"n": 0})
        server.pause()  # SIGSTOP: the fire's commit waits in the server's socket
        try:
            with pytest.raises(StorageUnavailableError) as caught:
                manager.fire("tick", {"n": 1})
        finally:
            server.resume()
        wait_for(lambda: len(storage.instances_of_task("page")) == 2, 10,
                 "the stalled commit to land")
        assert storage.latest_kwargs["tick"] == {"n": 1}  # it was committed after all
        assert caught.value.committed is not False


# -- 3. a process killed mid-task ---------------------------------------------------------------------


def _fire(ref: JsonDict, runner: str) -> None:
    """Fire ``go`` with ``runner`` (tasks run in this process) and wait for the task threads."""
    import tests.recovery_helpers  # noqa: F401 - registers the tasks in this process

    TriggerManager(open_reference(ref), task_runner=runner, lease_seconds=LEASE).fire("go")
    if runner == "threading":
        settle(DEADLINE)


@BOTH
@pytest.mark.parametrize("runner", ["inline", "threading"])
def test_a_process_killed_mid_task_is_recovered_the_task_ends_once_and_its_cascade_follows(
        storage: StorageBackend, record: Path, tmp_path: Path, runner: str,
        reaper: list[Any]) -> None:
    hold = tmp_path / "hold"
    hold.touch()  # the first attempt blocks: its process is killed meanwhile
    TriggerManager(storage).update_configuration(chain(record, hold=str(hold)))
    victim = spawn(_fire, storage.reference(), runner)
    reaper.append(victim)
    wait_for(lambda: started(record)["t#0"] == 1, 60, "the task to start")
    claim = claim_of(storage["t#0"])
    assert claim is not None and worker_pid(claim.worker) == victim.pid
    kill(victim)
    hold.unlink()

    manager = TriggerManager(storage, task_runner=runner, claim_grace_seconds=GRACE)
    (found,) = wait_for(manager.stuck, 10 * LEASE, "the dead worker's lease to expire")
    assert (found.instance, found.reason, found.worker, found.attempt) == (
        "t#0", "lease expired", claim.worker, 1)
    with capture_signals(session_finalized) as finalized:
        recovered = manager.recover()
        settle()
    # With the threading runner the chain may end while the recovery goes on: then the
    # recovery finalizes the session rather than the last task (once, either way).
    assert recovered[0] == Recovery("handed off", "t#0", "lease expired")
    assert recovered[1:] in ([], [Recovery("finalized", None, "every task is resolved")])

    me = os.getpid()
    assert runs(record) == [("t#0", 1, victim.pid), ("t#0", 2, me), ("next#0", 1, me),
                            ("report#0", 1, me)]
    done = storage["t#0"]
    assert done.status is TaskStatus.FINISHED and done.metadata["result"]["attempt"] == 2
    assert claim_of(done).lost == (claim.worker,)  # type: ignore[union-attr]
    assert open_work(storage) == {} and storage.is_finalized and len(finalized) == 1
    assert manager.recover() == []


# -- 4. a process killed between its commit and its hand-off ---------------------------------------------


def _fire_and_die(ref: JsonDict) -> None:
    import tests.recovery_helpers  # noqa: F401 - registers the tasks in this process

    with registered_class(task_runners, "killing", KillingRunner):
        TriggerManager(open_reference(ref), task_runner="killing").fire("go", {"by": "victim"})


@BOTH
def test_a_process_killed_between_its_commit_and_the_hand_off_is_recovered_after_the_grace_time(
        storage: StorageBackend, record: Path) -> None:
    TriggerManager(storage).update_configuration(chain(record))
    victim = spawn(_fire_and_die, storage.reference())
    join([victim], exitcode=-signal.SIGKILL)
    assert {i.name: i.status.value for i in storage} == {"t#0": "scheduled"}
    assert storage.latest_kwargs["go"] == {"by": "victim"}

    manager = TriggerManager(storage, claim_grace_seconds=GRACE)
    wait_for(manager.stuck, 10, "the grace time")
    assert manager.recover() == [Recovery("handed off", "t#0", "unclaimed")]
    assert started(record) == Counter({"t#0": 1, "next#0": 1, "report#0": 1})
    assert open_work(storage) == {} and storage.is_finalized


# -- 6. a process killed between a firing's record and its follow-up (Redis records first) ---------------


def _record_and_die(ref: JsonDict, trigger: str) -> None:
    """Fire ``trigger`` from a process that knows nothing of the session, and die right after
    Redis recorded the firing, before the transition that follows it is committed (the
    storage's own round trips, with a SIGKILL between them)."""
    import tests.recovery_helpers  # noqa: F401 - registers the tasks in this process

    def die(*args: Any, **kwargs: Any) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    RedisStorageBackend._commit = die  # type: ignore[method-assign]
    TriggerManager(open_reference(ref)).fire(trigger, {"by": "victim"})


@REDIS
def test_firings_recorded_by_processes_killed_before_their_follow_up_are_followed_up_once(
        storage: StorageBackend, record: Path) -> None:
    TriggerManager(storage).update_configuration({
        **chain(record),
        "vetoed": {"after": ["later"], "unless": ["stop"], "run": RECORD,
                   "withParams": with_record(record)}})
    victims = [spawn(_record_and_die, storage.reference(), trigger) for trigger in ("go", "stop")]
    join(victims, exitcode=-signal.SIGKILL)
    assert storage.latest_kwargs == {"go": {"by": "victim"}, "stop": {"by": "victim"}}
    assert list(storage) == []  # recorded, and nothing that follows from them

    manager = TriggerManager(storage)
    assert sorted(manager.recover(), key=lambda r: r.instance or "") == [
        Recovery("scheduled", "t#0", "every trigger of t fired"),
        Recovery("abandoned", "vetoed#0", "vetoed was vetoed")]
    assert started(record) == Counter({"t#0": 1, "next#0": 1, "report#0": 1})
    assert {i.name: i.status.value for i in storage} == {
        "t#0": "finished", "next#0": "finished", "vetoed#0": "abandoned", "report#0": "finished"}
    assert storage.is_finalized and manager.recover() == []


# -- 9. recoveries racing each other ------------------------------------------------------------------------


def _recover(number: int, barrier: Any, ref: JsonDict, out: str) -> None:
    import tests.recovery_helpers  # noqa: F401 - registers the tasks in this process

    manager = TriggerManager(open_reference(ref), claim_grace_seconds=GRACE)
    barrier.wait(timeout=60)
    done = manager.recover()
    Path(f"{out}-{number}.json").write_text(json.dumps([r.to_json() for r in done]))


@BOTH
def test_two_processes_recovering_one_session_at_once_run_nothing_twice(
        storage: StorageBackend, record: Path, tmp_path: Path) -> None:
    stuck = [f"t{n}" for n in range(6)]
    with registered_class(task_runners, "dropping", type("Dropping", (DroppingRunner,),
                                                         {"dropped": []})):
        lost = TriggerManager(storage, task_runner="dropping", claim_grace_seconds=GRACE)
        lost.update_configuration({
            **{name: {"after": ["go"], "run": RECORD, "withParams": with_record(record)}
               for name in stuck},
            "join": {"after": stuck, "run": RECORD, "withParams": with_record(record)},
            "late": {"after": ["lateGo"], "run": RECORD, "withParams": with_record(record)},
            "report": {"after": ["sessionFinalized"], "run": RECORD,
                       "withParams": with_record(record)}})
        lost.fire("go")
    record_only(storage, "lateGo")  # and a follow-up lost: "late" is ready without an instance
    for name in stuck[:3]:  # half were claimed by workers that died, half never handed off
        assert run_transition(storage, Plan(instances=(f"{name}#0",)), lambda t, n=name: t.claim(
            f"{n}#0", Lease(30, "dead@host"))).changes.result is not None
        expire_claim(storage, f"{name}#0")
    wait_for(lambda: len(lost.stuck()) == 6, 10, "every instance to count as stuck")

    join(spawn_many(_recover, storage.reference(), str(tmp_path / "recovered"), count=2))

    reports = [json.loads((tmp_path / f"recovered-{n}.json").read_text()) for n in range(2)]
    handed = Counter(r["instance"] for report in reports for r in report
                     if r["action"] == "handed off")
    assert handed == Counter({f"{name}#0": 1 for name in stuck})
    assert [r["instance"] for report in reports for r in report
            if r["action"] == "scheduled"] == ["late#0"]
    assert started(record) == Counter(
        {**{f"{name}#0": 1 for name in stuck}, "join#0": 1, "late#0": 1, "report#0": 1})
    assert open_work(storage) == {} and storage.is_finalized


# -- the heartbeat -------------------------------------------------------------------------------------------


def _execute(ref: JsonDict, name: str, lease: float, log: str | None = None) -> None:
    """Run one instance, as a worker would, with ``lease``; the log of triggerhooks in ``log``."""
    import tests.recovery_helpers  # noqa: F401 - registers the tasks in this process

    if log:
        handler = logging.FileHandler(log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        logging.getLogger("triggerhooks").addHandler(handler)
        logging.getLogger("triggerhooks").setLevel(logging.INFO)
    TriggerManager(open_reference(ref), lease_seconds=lease).execute(name)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # Redis: the outage test below
def test_a_task_running_three_times_its_lease_is_never_taken_over_by_a_concurrent_recovery(
        storage: StorageBackend, record: Path, held: type[HoldingRunner]) -> None:
    manager = TriggerManager(storage, task_runner="held", claim_grace_seconds=GRACE)
    manager.update_configuration({"long": {"after": ["go"], "run": RECORD,
                                           "withParams": with_record(record, sleep=3 * LEASE)}})
    manager.fire("go")
    worker = spawn(_execute, storage.reference(), "long#0", LEASE)
    wait_for(lambda: started(record)["long#0"] == 1, 60, "the task to start")
    first = claim_of(storage["long#0"])
    assert first is not None

    recovered, looked = [], 0
    deadline = time.monotonic() + DEADLINE
    while storage["long#0"].status is TaskStatus.RUNNING:  # recover all along
        recovered += manager.recover() + manager.stuck()  # type: ignore[operator]
        looked += 1
        assert time.monotonic() < deadline, "the task never ended"
        time.sleep(0.01)
    join([worker])

    assert recovered == [] and looked > 10
    done = storage["long#0"]
    claim = claim_of(done)
    assert done.status is TaskStatus.FINISHED and claim is not None
    assert (claim.token, claim.attempt, claim.worker) == (first.token, 1, first.worker)
    assert claim.expires_at > first.expires_at  # renewed while it ran
    assert started(record) == Counter({"long#0": 1})


@trigger_task(name="tests.recovery.forker")
def forker(context: TaskContext) -> dict[str, Any]:
    """On its first attempt: fork a child that runs ``b#0`` (as a worker that forks its own
    workers would), then block while ``hold`` exists. The child's pid goes to ``pid``."""
    options = context.trigger_kwargs["rec"]
    claim = claim_of(context.task_instance)
    if claim is not None and claim.attempt == 1:
        pid = os.fork()
        if pid == 0:  # the child: a worker of its own
            try:
                child = TriggerManager(open_reference(context.manager.storage.reference()),
                                       lease_seconds=LEASE)
                child.execute("b#0")
            finally:
                os._exit(0)
        Path(options["pid"]).write_text(str(pid))
        deadline = time.monotonic() + 60
        while os.path.exists(options["hold"]) and time.monotonic() < deadline:
            time.sleep(0.02)
    return {"attempt": claim.attempt if claim else 0}


@REDIS
def test_a_forked_child_does_not_keep_its_parent_s_leases_alive(
        storage: StorageBackend, record: Path, tmp_path: Path, held: type[HoldingRunner],
        reaper: list[Any]) -> None:
    hold, pid_file = tmp_path / "hold", tmp_path / "child.pid"
    hold.touch()
    manager = TriggerManager(storage, task_runner="held")
    manager.update_configuration({
        "a": {"after": ["go"], "run": "tests.recovery.forker",
              "withParams": {"rec": {"hold": str(hold), "pid": str(pid_file)}}},
        "b": {"after": ["go"], "run": RECORD, "withParams": with_record(record, hold=str(hold))}})
    manager.fire("go")
    parent = spawn(_execute, storage.reference(), "a#0", LEASE)
    reaper.append(parent)
    wait_for(lambda: pid_file.exists() and pid_file.read_text() and started(record)["b#0"], 60,
             "the forked child to start b#0")
    child = int(pid_file.read_text())
    reaper.append(child)
    a_claim = claim_of(storage["a#0"])
    assert a_claim is not None and worker_pid(a_claim.worker) == parent.pid

    kill(parent)  # the child lives on, running b#0

    recovering = TriggerManager(storage, claim_grace_seconds=GRACE)
    stuck = wait_for(lambda: [s.instance for s in recovering.stuck()], 10 * LEASE,
                     "the dead parent's lease to expire")
    assert stuck == ["a#0"]  # b#0's lease is its living worker's: renewed
    hold.unlink()
    wait_for(lambda: storage["b#0"].status is TaskStatus.FINISHED, 30, "the child to finish b#0")
    assert recovering.recover() == [Recovery("handed off", "a#0", "lease expired")]
    assert storage["a#0"].status is TaskStatus.FINISHED
    assert claim_of(storage["a#0"]).attempt == 2  # type: ignore[union-attr]
    assert started(record) == Counter({"b#0": 1})


def test_the_heartbeat_outlives_a_redis_server_briefly_down(
        tmp_path: Path, record: Path, reaper: list[Any]) -> None:
    lease = 4.0
    hold, log = tmp_path / "hold", tmp_path / "worker.log"
    hold.touch()
    with redis_server(tmp_path) as server, holding_runner("held"):
        storage = RedisStorageBackend("beats", server.url, prefix="faults")
        manager = TriggerManager(storage, task_runner="held", claim_grace_seconds=GRACE)
        manager.update_configuration({"t": {"after": ["go"], "run": RECORD,
                                            "withParams": with_record(record, hold=str(hold))}})
        manager.fire("go")
        worker = spawn(_execute, storage.reference(), "t#0", lease, str(log))
        reaper.append(worker)
        wait_for(lambda: started(record)["t#0"] == 1, 60, "the task to start")
        first = claim_of(storage["t#0"])
        assert first is not None
        wait_for(lambda: claim_of(storage["t#0"]).expires_at > first.expires_at,  # type: ignore[union-attr]
                 2 * lease, "a first renewal")
        last = claim_of(storage["t#0"])  # what the outage starts from
        assert last is not None

        server.kill()
        wait_for(lambda: log.exists() and "renewing the lease failed" in log.read_text(), 10,
                 "a renewal to fail")
        server.start()
        found: list[Any] = []

        def past_the_last_expiry() -> bool:
            found.extend(manager.stuck() + manager.recover())  # type: ignore[operator]
            return utcnow() > last.expires_at
        wait_for(past_the_last_expiry, 3 * lease, "the last lease before the outage to run out")
        alive = claim_of(storage["t#0"])
        assert alive is not None and alive.token == first.token
        assert alive.expires_at > last.expires_at  # renewed once the server was back
        hold.unlink()
        join([worker])

        assert found == []
        done = storage["t#0"]
        claim = claim_of(done)
        assert done.status is TaskStatus.FINISHED and claim is not None
        assert (claim.token, claim.attempt) == (first.token, 1)
        assert started(record) == Counter({"t#0": 1})


@REDIS
def test_a_storage_that_hangs_does_not_stop_the_heartbeat_of_leases_on_other_storages(
        storage: StorageBackend, record: Path, tmp_path: Path) -> None:
    hold = tmp_path / "hold"
    hold.touch()
    with redis_server(tmp_path) as server:
        hanging = TriggerManager(RedisStorageBackend("hangs", server.url, prefix="faults"),
                                 task_runner="threading", lease_seconds=LEASE)
        healthy = TriggerManager(storage, task_runner="threading", lease_seconds=LEASE)
        for manager in (hanging, healthy):
            manager.update_configuration({"t": {"after": ["go"], "run": RECORD, "withParams":
                                                with_record(record, hold=str(hold))}})
            manager.fire("go")
        wait_for(lambda: started(record)["t#0"] == 2, 30, "both tasks to start")
        watcher = TriggerManager(storage, claim_grace_seconds=GRACE)
        server.pause()  # SIGSTOP: its next renewal waits for an answer
        try:
            until = time.monotonic() + 3 * LEASE
            found: list[Any] = []
            while time.monotonic() < until and not found:
                found = watcher.stuck()
                time.sleep(0.02)
        finally:
            server.resume()
            hold.unlink()
            settle(60)
        assert found == []  # the healthy storage's lease was renewed all along
        assert claim_of(storage["t#0"]).attempt == 1  # type: ignore[union-attr]
