"""Recovery, in one process, on every backend: what counts as stuck and what a recovery does
with it; outcomes the storage cannot hold; errors raised after a commit; fire keys.

Stuck instances are made the way they happen: a runner that loses its hand-off (a process
killed between the commit and the hand-off, a dropped message), a worker that claimed and
died (its claim made by a transition, its lease moved into the past with ``expire_claim``),
a process killed between a firing's record and its follow-up (``record_only``). The same
with real processes killed by SIGKILL is in ``tests/storages/test_recovery_faults.py``.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.helpers import settle
from tests.recovery_helpers import (
    RECORD,
    DroppingRunner,
    FailingRunner,
    open_work,
    record_only,
    started,
    with_record,
)
from triggerhooks import (
    FireKeyReusedError,
    SignalHandlingError,
    TaskInstance,
    TaskStatus,
    TriggerManager,
    capture_signals,
    trigger_task,
)
from triggerhooks.core.effects import after_commit
from triggerhooks.core.leases import Lease, claim_of
from triggerhooks.core.recovery import Recovery, Stuck
from triggerhooks.core.rules import Transition, transition
from triggerhooks.models import utcnow
from triggerhooks.runners import task_runners
from triggerhooks.signals import (
    configuration_updated,
    post_fire,
    post_replay,
    post_skip,
    pre_fire,
    session_finalized,
    task_completed,
    task_failed,
    task_scheduled,
)
from triggerhooks.storages import Plan, StorageBackend
from triggerhooks.task import StatusChange, TaskContext
from triggerhooks.testing import (
    HoldingRunner,
    connected,
    expire_claim,
    registered_class,
    run_transition,
    wait_for,
)
from triggerhooks.testing.contract import StorageFactory

GRACE = 0.3
"""The claim grace time of the tests that wait for it (seconds)."""
LONG_AGO = "2000-01-01T00:00:00+00:00"


def at(stamp: str, seconds: float = 0.0) -> datetime:
    return datetime.fromisoformat(stamp) + timedelta(seconds=seconds)


def now() -> datetime:
    return datetime.fromisoformat(utcnow())


def step(storage: StorageBackend, name: str, body: Callable[[Transition], Any]) -> Any:
    """One transition reading the instance ``name``; what ``body`` returned."""
    return run_transition(storage, Plan(instances=(name,)), body).changes.result


def die_while_running(storage: StorageBackend, name: str, worker: str = "dead@host",
                      max_attempts: int | None = 3) -> None:
    """``worker`` claims ``name`` (or takes it over) as a runner does, then dies: its lease
    runs out."""
    claimed = step(storage, name, lambda t: t.claim(name, Lease(30, worker,
                                                               max_attempts=max_attempts)))
    assert claimed is not None, f"{worker} could not claim {name}"
    expire_claim(storage, name)


def statuses(storage: StorageBackend) -> dict[str, str]:
    return {instance.name: instance.status.value for instance in storage}


@pytest.fixture
def dropping() -> Iterator[type[DroppingRunner]]:
    """The ``dropping`` runner: every hand-off to it is lost."""
    class Dropping(DroppingRunner):
        dropped: ClassVar[list[str]] = []

    with registered_class(task_runners, "dropping", Dropping):
        yield Dropping


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """The file :data:`RECORD` appends each start to."""
    return tmp_path / "runs.log"


def chain(runs: Path, **first: Any) -> dict[str, Any]:
    """``t`` after ``go``, then its cascade ``next``: both record their runs."""
    return {"t": {"after": ["go"], "run": RECORD, "withParams": with_record(runs), **first},
            "next": {"after": ["t"], "run": RECORD, "withParams": with_record(runs)}}


# -- scheduled, never claimed ----------------------------------------------------------------------


def test_a_lost_hand_off_is_stuck_after_the_grace_time_and_a_recovery_runs_it_once(
        storage: StorageBackend, dropping: type[DroppingRunner], runs: Path) -> None:
    lost = TriggerManager(storage, task_runner="dropping")
    lost.update_configuration(chain(runs))
    firing = lost.fire("go")
    assert firing.scheduled == ("t#0",) and dropping.dropped == ["t#0"]
    scheduled_at = storage["t#0"].metadata["timestamps"]["scheduled"]

    # Within the grace time it is only waiting for its runner: left alone.
    patient = TriggerManager(storage, claim_grace_seconds=30)
    assert patient.stuck() == [] and patient.recover() == []
    assert statuses(storage) == {"t#0": "scheduled"} and "recovered" not in storage["t#0"].metadata

    recovering = TriggerManager(storage, claim_grace_seconds=GRACE)  # inline
    found = wait_for(recovering.stuck, 10, "the instance to count as stuck")
    assert found == [Stuck("t#0", "scheduled", "unclaimed", at(scheduled_at, GRACE).isoformat())]
    assert found[0].to_json() == {"instance": "t#0", "status": "scheduled", "reason": "unclaimed",
                                  "since": found[0].since, "worker": None, "attempt": None,
                                  "exhausted": False}

    assert recovering.recover() == [Recovery("handed off", "t#0", "unclaimed")]

    assert statuses(storage) == {"t#0": "finished", "next#0": "finished"}
    assert started(runs) == Counter({"t#0": 1, "next#0": 1})
    assert claim_of(storage["t#0"]).attempt == 1  # type: ignore[union-attr]
    assert storage["t#0"].metadata["recovered"]["count"] == 1
    assert storage.is_finalized
    assert recovering.recover() == [] and recovering.stuck() == []
    assert started(runs) == Counter({"t#0": 1, "next#0": 1})


def test_a_recovered_hand_off_that_is_lost_again_is_recovered_again_after_another_grace_time(
        storage: StorageBackend, dropping: type[DroppingRunner], runs: Path) -> None:
    lost = TriggerManager(storage, task_runner="dropping", claim_grace_seconds=GRACE)
    lost.update_configuration(chain(runs))
    lost.fire("go")
    wait_for(lost.stuck, 10, "the first grace time")
    assert lost.recover() == [Recovery("handed off", "t#0", "unclaimed")]
    stamp = storage["t#0"].metadata["recovered"]
    assert dropping.dropped == ["t#0", "t#0"]
    # Handed off again: another grace time from then, not from when it was first scheduled.
    assert TriggerManager(storage, claim_grace_seconds=30).stuck() == []
    found = wait_for(lost.stuck, 10, "the second grace time")
    assert found[0].since == at(stamp["at"], GRACE).isoformat()
    assert lost.recover() == [Recovery("handed off", "t#0", "unclaimed")]
    assert storage["t#0"].metadata["recovered"]["count"] == 2
    assert started(runs) == Counter()  # the dropping runner ran nothing


def test_a_retry_due_later_is_not_stuck_before_its_due_time_plus_the_grace_time(
        storage: StorageBackend, dropping: type[DroppingRunner]) -> None:
    cooldown = 1.2
    manager = TriggerManager(storage, task_runner="dropping", claim_grace_seconds=GRACE)
    manager.update_configuration({"flaky": {"after": ["go"], "run": "tests.flaky"}})
    manager.fire("go", {"failures": 1, "cooldown": cooldown})
    failed = manager.execute("flaky#0")  # as a worker would; the retry's copy is lost
    assert failed is not None and failed.status is TaskStatus.REPLAYED
    copy = storage["flaky#1"]
    assert copy.status is TaskStatus.SCHEDULED and dropping.dropped == ["flaky#0", "flaky#1"]
    scheduled_at, due = copy.metadata["timestamps"]["scheduled"], copy.metadata["due"]
    assert at(due) == pytest.approx(at(scheduled_at, cooldown), abs=timedelta(seconds=0.5))

    wait_for(lambda: now() > at(scheduled_at, GRACE + 0.2), 10, "the grace time after scheduling")
    checked = now()
    assert manager.stuck() == [] and manager.recover() == []
    assert checked < at(due, GRACE), "too slow: the check came after the due time"
    assert storage["flaky#1"].status is TaskStatus.SCHEDULED

    found = wait_for(manager.stuck, 10, "the due time plus the grace time")
    assert found == [Stuck("flaky#1", "scheduled", "unclaimed", at(due, GRACE).isoformat())]
    inline = TriggerManager(storage, claim_grace_seconds=GRACE)
    assert inline.recover() == [Recovery("handed off", "flaky#1", "unclaimed")]
    assert storage["flaky#1"].status is TaskStatus.FINISHED
    assert storage["flaky#1"].metadata["result"] == {"attempts": 2}


@trigger_task(name="tests.recovery.again")
def run_again_once(context: TaskContext) -> Any:
    """Asks to be scheduled again when it runs as a takeover (attempt 2), else finishes."""
    claim = claim_of(context.task_instance)
    if claim is not None and claim.attempt > 1:
        return StatusChange("scheduled")
    return {"attempt": claim.attempt if claim else 0}


def test_an_instance_scheduled_again_long_after_a_recovery_gets_a_whole_grace_time(
        storage: StorageBackend, held: type[HoldingRunner]) -> None:
    """A recovery's stamp is when it handed the instance off; the instance being scheduled
    again later (here by its own task) starts another grace time.

    How it went wrong before the fix: the grace time counted from the recovery's stamp
    whenever there was one, so an instance scheduled again long after a recovery counted as
    stuck the moment it was scheduled."""
    manager = TriggerManager(storage, task_runner="held", claim_grace_seconds=30)
    manager.update_configuration({"t": {"after": ["go"], "run": "tests.recovery.again"}})
    manager.fire("go")
    held.held.clear()
    die_while_running(storage, "t#0")
    assert manager.recover() == [Recovery("handed off", "t#0", "lease expired")]
    # That recovery was long ago (as if its runner had taken its time).
    step(storage, "t#0", lambda t: t.put(t.instance("t#0"), TaskStatus.RUNNING,
                                         metadata={"recovered": {"at": LONG_AGO, "count": 1}}))
    held.held.clear()
    done = manager.execute("t#0")  # the runner takes it over; the task asks to run again
    assert done is not None and done.status is TaskStatus.SCHEDULED

    again = storage["t#0"]
    assert again.status is TaskStatus.SCHEDULED and held.names() == ["t#0"]
    assert now() < at(again.metadata["timestamps"]["scheduled"], 30)
    assert manager.stuck() == []  # scheduled a moment ago: its runner has it
    assert manager.recover() == []
    assert held.names() == ["t#0"]


# -- running, its worker gone ----------------------------------------------------------------------


def test_a_running_instance_whose_worker_died_is_taken_over_and_its_cascade_follows(
        storage: StorageBackend, held: type[HoldingRunner], runs: Path) -> None:
    TriggerManager(storage, task_runner="held").update_configuration(chain(runs))
    TriggerManager(storage, task_runner="held").fire("go")
    die_while_running(storage, "t#0")
    manager = TriggerManager(storage)  # inline

    (found,) = manager.stuck()
    assert (found.instance, found.status, found.reason, found.since, found.worker, found.attempt,
            found.exhausted) == ("t#0", "running", "lease expired", LONG_AGO, "dead@host", 1, False)
    with capture_signals(session_finalized) as sent:
        assert manager.recover() == [Recovery("handed off", "t#0", "lease expired")]

    done = storage["t#0"]
    claim = claim_of(done)
    assert done.status is TaskStatus.FINISHED and claim is not None
    assert (claim.attempt, claim.lost) == (2, ("dead@host",)) and claim.worker != "dead@host"
    assert done.metadata["result"] == {"ran": "t#0", "attempt": 2}
    assert statuses(storage) == {"t#0": "finished", "next#0": "finished"}
    assert started(runs) == Counter({"t#0": 1, "next#0": 1})
    assert len(sent) == 1 and storage.is_finalized
    assert manager.recover() == []


def test_a_live_lease_is_never_taken_over(storage: StorageBackend, held: type[HoldingRunner],
                                          runs: Path) -> None:
    manager = TriggerManager(storage, task_runner="held", claim_grace_seconds=GRACE)
    manager.update_configuration(chain(runs))
    manager.fire("go")
    claimed = step(storage, "t#0", lambda t: t.claim("t#0", Lease(30, "alive@host")))
    assert claimed is not None
    before = storage["t#0"]
    wait_for(lambda: now() > at(before.metadata["timestamps"]["running"], GRACE + 0.1), 10,
             "the grace time")
    assert manager.stuck() == [] and manager.recover() == []
    assert TriggerManager(storage).execute("t#0") is None  # a copy of its message: nothing
    assert storage["t#0"] == before and held.names() == ["t#0"]
    assert started(runs) == Counter()


def test_a_lease_renewed_while_its_ended_instance_is_announced_is_not_called_lost(
        storage: StorageBackend, caplog: pytest.LogCaptureFixture, isolated_signals: None) -> None:
    """A task ends, and its ``task_completed`` receivers take longer than a renewal interval:
    the heartbeat finds the instance no longer running under its claim.

    How it went wrong before the fix: it warned that the claim was lost (\"taken over after
    its lease expired; this run's outcome will not be stored\") though nobody took it over
    and the outcome was stored."""
    manager = TriggerManager(storage, lease_seconds=0.3)  # a renewal every 0.1s
    manager.update_configuration({"t": {"after": ["go"], "run": "tests.noop"}})
    announced = threading.Event()

    def slow(sender: Any, **kwargs: Any) -> None:
        announced.wait(0.6)  # a slow receiver: three renewals fall due meanwhile

    with caplog.at_level(logging.INFO, "triggerhooks"), connected(slow, task_completed):
        manager.fire("go")
    assert storage["t#0"].status is TaskStatus.FINISHED
    assert [r.getMessage() for r in caplog.records if "claim was lost" in r.getMessage()] == []


def test_an_instance_that_lost_its_worker_on_its_last_attempt_fails_with_worker_lost_error(
        storage: StorageBackend, held: type[HoldingRunner], runs: Path) -> None:
    manager = TriggerManager(storage, task_runner="held")
    manager.update_configuration(chain(runs))
    manager.fire("go")
    for worker in ("w1@host", "w2@host", "w3@host"):  # three workers (the default) died
        die_while_running(storage, "t#0", worker)
    (found,) = manager.stuck()
    assert (found.worker, found.attempt, found.exhausted) == ("w3@host", 3, True)
    assert found.to_json()["exhausted"] is True

    with capture_signals(task_failed) as sent:
        assert manager.recover() == [Recovery("failed", "t#0", "lease expired")]

    failed = storage["t#0"]
    assert failed.status is TaskStatus.FAILED
    meta = failed.metadata
    assert meta["exceptionType"] == "triggerhooks.exceptions.WorkerLostError"
    assert meta["exceptionInfo"] == (
        "triggerhooks.exceptions.WorkerLostError: t#0 lost its worker on each of its 3 attempts "
        "(at most 3): its lease expired while it ran on w1@host, w2@host, w3@host. "
        "Replay or skip it.\n")
    assert meta["exceptionContext"] == {"attempts": 3, "maxAttempts": 3,
                                        "workers": ["w1@host", "w2@host", "w3@host"]}
    assert [s["task_instance"].name for s in sent] == ["t#0"]
    assert started(runs) == Counter() and held.names() == ["t#0"]  # never started again
    assert "t" not in storage.latest_kwargs and not storage.is_finalized
    assert manager.stuck() == [] and manager.recover() == []
    assert storage["t#0"] == failed


def test_the_attempts_a_claim_allows_are_its_own_not_the_recovering_manager_s(
        storage: StorageBackend, held: type[HoldingRunner]) -> None:
    manager = TriggerManager(storage, task_runner="held")
    manager.update_configuration({"t": {"after": ["go"], "run": "tests.noop"}})
    manager.fire("go")
    die_while_running(storage, "t#0", "only@host", max_attempts=1)
    assert manager.recover() == [Recovery("failed", "t#0", "lease expired")]
    assert "on each of its 1 attempt (at most 1)" in storage["t#0"].metadata["exceptionInfo"]


# -- a firing recorded, its follow-up lost ---------------------------------------------------------


def test_a_ready_task_without_an_instance_is_scheduled_and_run_once(
        storage: StorageBackend, runs: Path) -> None:
    manager = TriggerManager(storage)
    manager.update_configuration({
        **chain(runs), "t": {"after": ["go", "also"], "run": RECORD, "withParams": with_record(runs)}})
    manager.fire("also")
    record_only(storage, "go", b'{"n": 1}')  # the process died before it scheduled t
    assert storage.latest_kwargs["go"] == {"n": 1} and storage["t#0"].status == "unstarted"
    assert manager.stuck() == []  # there is no instance to be stuck

    assert manager.recover() == [Recovery("scheduled", "t#0", "every trigger of t fired")]

    assert statuses(storage) == {"t#0": "finished", "next#0": "finished"}
    assert storage["t#0"].kwargs["go"] == {"n": 1}
    assert started(runs) == Counter({"t#0": 1, "next#0": 1})
    assert storage.is_finalized
    assert manager.recover() == []
    manager.fire("go", {"n": 2})  # a one-shot task: never again
    assert started(runs) == Counter({"t#0": 1, "next#0": 1})


def test_and_every_instances_left_waiting_by_a_lost_follow_up_are_scheduled(
        storage: StorageBackend, runs: Path) -> None:
    manager = TriggerManager(storage)
    manager.update_configuration({"page": {"after": ["start"], "andEvery": "tick", "run": RECORD,
                                           "withParams": with_record(runs)}})
    for n in range(3):
        manager.fire("tick", {"n": n})
    assert statuses(storage) == {f"page#{n}": "unstarted" for n in range(3)}
    record_only(storage, "start")

    done = manager.recover()

    assert sorted(done, key=lambda r: r.instance or "") == [
        Recovery("scheduled", f"page#{n}", "every trigger of page fired") for n in range(3)]
    assert statuses(storage) == {f"page#{n}": "finished" for n in range(3)}
    assert started(runs) == Counter({f"page#{n}": 1 for n in range(3)})
    assert manager.recover() == []


def test_instances_of_a_task_vetoed_by_a_lost_follow_up_are_abandoned(
        storage: StorageBackend, runs: Path) -> None:
    manager = TriggerManager(storage)
    manager.update_configuration({"page": {"after": ["start"], "andEvery": "tick",
                                           "unless": ["stop"], "run": RECORD,
                                           "withParams": with_record(runs)}})
    manager.fire("tick", {"n": 0})
    record_only(storage, "stop")

    assert manager.recover() == [Recovery("abandoned", "page#0", "page was vetoed")]
    assert statuses(storage) == {"page#0": "abandoned"}
    assert storage.is_finalized
    manager.fire("start")
    assert started(runs) == Counter()




def test_a_task_vetoed_by_a_lost_follow_up_before_it_had_an_instance_is_abandoned(
        storage: StorageBackend, runs: Path) -> None:
    """Redis records a firing first when the process knows nothing of it: a process killed
    right after recording ``stop`` leaves ``t`` vetoed without its abandoned ``#0``.

    How it went wrong before the fix: a recovery applied the rules to a vetoed task only when
    it had pending instances; the abandoned ``#0`` the rules give a task vetoed before it had
    any was never made, the task stayed unresolved and the session never finalized."""
    manager = TriggerManager(storage)
    manager.update_configuration({
        "t": {"after": ["go"], "unless": ["stop"], "run": RECORD, "withParams": with_record(runs)},
        "u": {"after": ["go"], "run": RECORD, "withParams": with_record(runs)}})
    record_only(storage, "stop")
    manager.fire("go")  # u runs; t was vetoed
    assert started(runs) == Counter({"u#0": 1})

    assert manager.recover() == [Recovery("abandoned", "t#0", "t was vetoed")]

    assert statuses(storage) == {"u#0": "finished", "t#0": "abandoned"}
    assert [config.name for config in manager.get_unresolved_tasks()] == []
    assert storage.is_finalized
    assert manager.recover() == []


def test_each_task_a_lost_follow_up_left_behind_is_recovered_under_its_own_name(
        storage: StorageBackend, runs: Path) -> None:
    """How it went wrong before the fix: the rules of one firing move every task it concerns
    on, and each recovery was reported as the first task's (\"every trigger of t fired\" for
    u#0 too)."""
    manager = TriggerManager(storage)
    manager.update_configuration({
        name: {"after": ["go"], "run": RECORD, "withParams": with_record(runs)}
        for name in ("t", "u")})
    manager.update_configuration({
        name: {"after": ["gate"], "andEvery": "tick", "unless": ["stop"], "run": RECORD,
               "withParams": with_record(runs)} for name in ("p", "q")})
    manager.fire("tick")  # p#0 and q#0 wait for the gate
    record_only(storage, "go")
    record_only(storage, "stop")

    done = manager.recover()

    assert sorted(done, key=lambda r: r.instance or "") == [
        Recovery("abandoned", "p#0", "p was vetoed"), Recovery("abandoned", "q#0", "q was vetoed"),
        Recovery("scheduled", "t#0", "every trigger of t fired"),
        Recovery("scheduled", "u#0", "every trigger of u fired")]
    assert started(runs) == Counter({"t#0": 1, "u#0": 1})
    assert open_work(storage) == {} and storage.is_finalized


def test_a_session_left_unfinalized_is_finalized_once(storage: StorageBackend,
                                                      held: type[HoldingRunner]) -> None:
    manager = TriggerManager(storage, task_runner="held")
    manager.update_configuration({"t": {"after": ["go"], "run": "tests.noop"},
                                  "report": {"after": ["sessionFinalized"], "run": "tests.noop"}})
    manager.fire("go")
    # The task ended, and the process died before it fired sessionFinalized.
    step(storage, "t#0", lambda t: t.claim("t#0", Lease(30, "w")))
    token = claim_of(storage["t#0"]).token  # type: ignore[union-attr]
    assert step(storage, "t#0", lambda t: t.complete("t#0", b"{}", 0, token=token))
    assert not storage.is_finalized

    with capture_signals(session_finalized) as sent:
        assert manager.recover() == [Recovery("finalized", None, "every task is resolved")]
        assert manager.recover() == []
    assert len(sent) == 1 and storage.is_finalized
    assert held.names() == ["t#0", "report#0"]  # what waits for the finalization follows it


# -- recovering is safe ----------------------------------------------------------------------------


def test_recovering_a_healthy_session_changes_nothing(
        storage: StorageBackend, held: type[HoldingRunner]) -> None:
    manager = TriggerManager(storage, task_runner="held", claim_grace_seconds=30)
    manager.update_configuration({
        "done": {"after": ["a"], "run": "tests.noop"},
        "live": {"after": ["a"], "run": "tests.noop"},
        "fresh": {"after": ["b"], "run": "tests.noop"},
        "waits": {"after": ["a", "never"], "run": "tests.noop"},
        "page": {"after": ["gate"], "andEvery": "tick", "run": "tests.noop"},
        "vetoed": {"after": ["never"], "unless": ["a"], "run": "tests.noop"},
    })
    manager.fire("a")
    manager.fire("tick")
    assert manager.execute("done#0") is not None
    assert step(storage, "live#0", lambda t: t.claim("live#0", Lease(30, "alive"))) is not None
    manager.fire("b")
    before = {instance.name: instance for instance in storage}
    assert {name: i.status.value for name, i in before.items()} == {
        "done#0": "finished", "live#0": "running", "fresh#0": "scheduled", "page#0": "unstarted",
        "vetoed#0": "abandoned", "waits#0": "unstarted"}
    kwargs, metadata = storage.latest_kwargs, storage.metadata

    with capture_signals() as sent:
        assert manager.stuck() == [] and manager.recover() == []

    assert sent.names == []
    assert {instance.name: instance for instance in storage} == before
    assert (storage.latest_kwargs, storage.metadata) == (kwargs, metadata)
    assert not storage.is_finalized


def test_threads_recovering_one_session_at_once_run_nothing_twice(
        storage: StorageBackend, make_storage: StorageFactory, dropping: type[DroppingRunner],
        runs: Path) -> None:
    lost = TriggerManager(storage, task_runner="dropping", claim_grace_seconds=GRACE)
    lost.update_configuration({
        f"t{n}": {"after": ["go"], "run": RECORD, "withParams": with_record(runs)} for n in range(6)})
    lost.update_configuration({"join": {"after": [f"t{n}" for n in range(6)], "run": RECORD,
                                        "withParams": with_record(runs)},
                               "late": {"after": ["lateGo"], "run": RECORD,
                                        "withParams": with_record(runs)}})
    lost.fire("go")
    record_only(storage, "lateGo")  # and a follow-up lost: "late" is ready without an instance
    for n in range(3):  # half were claimed by a worker that died, half never handed off
        die_while_running(storage, f"t{n}#0")
    wait_for(lambda: len(lost.stuck()) == 6, 10, "every instance to count as stuck")
    barrier = threading.Barrier(4)
    done: list[list[Recovery]] = []
    errors: list[BaseException] = []

    def recover() -> None:
        manager = TriggerManager(make_storage(storage.uid), claim_grace_seconds=GRACE)
        barrier.wait(10)
        try:
            done.append(manager.recover())
        except BaseException as exc:
            errors.append(exc)

    with capture_signals(session_finalized) as finalized:
        threads = [threading.Thread(target=recover) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert errors == []
    handed = Counter(r.instance for found in done for r in found if r.action == "handed off")
    assert handed == Counter({f"t{n}#0": 1 for n in range(6)})
    assert [r.instance for found in done for r in found if r.action == "scheduled"] == ["late#0"]
    assert started(runs) == Counter({**{f"t{n}#0": 1 for n in range(6)}, "join#0": 1,
                                     "late#0": 1})
    assert open_work(storage) == {}
    assert set(statuses(storage).values()) == {"finished"}
    assert len(finalized) == 1 and storage.is_finalized


def test_a_transition_given_a_grace_time_recovers_the_stuck_instances_it_reads(
        storage: StorageBackend, dropping: type[DroppingRunner], runs: Path) -> None:
    manager = TriggerManager(storage, claim_grace_seconds=GRACE)
    TriggerManager(storage, task_runner="dropping").update_configuration(chain(runs))
    TriggerManager(storage, task_runner="dropping").fire("go")
    wait_for(manager.stuck, 10, "the grace time")

    commit = storage.transact(Plan(instances=("t#0",)), transition(
        lambda t: t.update_metadata("t#0", {"seen": True}), GRACE))

    assert [instance.name for instance, _ in commit.changes.recover] == ["t#0"]
    stored = storage["t#0"]
    assert stored.metadata["seen"] is True and stored.metadata["recovered"]["count"] == 1
    after_commit(manager, commit)  # hands it to its runner: inline here
    assert statuses(storage) == {"t#0": "finished", "next#0": "finished"}
    assert started(runs) == Counter({"t#0": 1, "next#0": 1})


def test_a_transition_given_a_grace_time_leaves_a_live_lease_alone(
        storage: StorageBackend, held: type[HoldingRunner]) -> None:
    manager = TriggerManager(storage, task_runner="held")
    manager.update_configuration({"t": {"after": ["go"], "run": "tests.noop"}})
    manager.fire("go")
    step(storage, "t#0", lambda t: t.claim("t#0", Lease(30, "alive")))
    commit = storage.transact(Plan(instances=("t#0",)), transition(
        lambda t: t.update_metadata("t#0", {"seen": True}), 0.001))
    assert commit.changes.recover == []
    assert "recovered" not in storage["t#0"].metadata


# -- the settings ----------------------------------------------------------------------------------


def test_lease_and_grace_come_from_the_constructor_then_the_environment(
        storage: StorageBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (TriggerManager(storage).lease_seconds, TriggerManager(storage).claim_grace_seconds) == (
        30.0, 60.0)
    monkeypatch.setenv("TRIGGERHOOKS_LEASE_SECONDS", "2.5")
    monkeypatch.setenv("TRIGGERHOOKS_CLAIM_GRACE_SECONDS", "7")
    assert (TriggerManager(storage).lease_seconds, TriggerManager(storage).claim_grace_seconds) == (
        2.5, 7.0)
    given = TriggerManager(storage, lease_seconds=4, claim_grace_seconds=5)
    assert (given.lease_seconds, given.claim_grace_seconds) == (4.0, 5.0)
    for bad in ("0", "-1", "nan", "inf", "soon", "1e12"):  # 1e12: its expiry overflows
        monkeypatch.setenv("TRIGGERHOOKS_CLAIM_GRACE_SECONDS", bad)
        with pytest.raises(ValueError, match=r"claim_grace_seconds must be a positive number of "
                                             r"seconds, not .* \(from \$TRIGGERHOOKS_CLAIM_GRACE"):
            TriggerManager(storage)
    with pytest.raises(ValueError, match="lease_seconds must be a positive number"):
        TriggerManager(storage, lease_seconds=0, claim_grace_seconds=1)


@pytest.mark.parametrize("setting", ["lease_seconds", "claim_grace_seconds"])
def test_seconds_too_long_for_the_clock_are_refused(storage: StorageBackend, setting: str,
                                                    held: type[HoldingRunner]) -> None:
    """Accepted, a lease of 1e12 seconds failed every claim with an OverflowError (every
    instance left scheduled), a grace that long every recovery."""
    with pytest.raises(ValueError, match=rf"{setting} must be a positive number of seconds, "
                                         r"not 1000000000000\.0 \(at most"):
        TriggerManager(storage, **{setting: 1e12})
    manager = TriggerManager(storage, task_runner="held")
    manager.update_configuration({"t": {"after": ["go"], "run": "tests.noop"}})
    manager.fire("go")
    with pytest.raises(ValueError, match=r"a lease must last a positive number of seconds, "
                                         r"not 1000000000000\.0"):
        manager.execute("t#0", lease=1e12)
    assert storage["t#0"].status == "scheduled"


def test_the_lease_of_an_execution_is_the_manager_s(storage: StorageBackend,
                                                    held: type[HoldingRunner]) -> None:
    manager = TriggerManager(storage, task_runner="held", lease_seconds=12)
    manager.update_configuration({"t": {"after": ["go"], "run": "tests.noop"}})
    manager.fire("go")
    done = held.release()[0]
    claim = claim_of(done)  # type: ignore[arg-type]
    assert claim is not None
    assert at(claim.expires_at) - at(claim.claimed_at) == timedelta(seconds=12)




@pytest.mark.parametrize("worker", ["host\udcff:12/MainThread", None])
def test_a_worker_name_utf8_cannot_hold_still_claims_and_runs_the_instance(
        storage: StorageBackend, held: type[HoldingRunner], worker: str | None) -> None:
    """How it went wrong before the fix: the claim stored the worker's name as given; one
    that UTF-8 cannot hold (a host name decoded with surrogateescape, a thread's name) made
    every claim raise UnstorableKwargsError, so the instance stayed scheduled for good and
    every recovery handed it off to fail again."""
    manager = TriggerManager(storage, task_runner="held")
    manager.update_configuration({"t": {"after": ["go"], "run": "tests.noop"}})
    manager.fire("go")
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(manager.execute("t#0", worker=worker))
        except Exception as exc:
            result.append(exc)

    thread = threading.Thread(target=run, name="worker \udc80 thread")  # the default names it
    thread.start()
    thread.join(30)
    done = result[0]
    assert isinstance(done, TaskInstance) and done.status is TaskStatus.FINISHED, done
    claim = claim_of(done)
    assert claim is not None and claim.worker is not None and "\\udc" in claim.worker
    claim.worker.encode("utf-8")


# -- outcomes the storage cannot hold --------------------------------------------------------------


def nested(levels: int) -> dict[str, Any]:
    """A mapping ``levels`` deep: ``nested(1) == {"leaf": 1}``."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"x": value}
    return value


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class ContextError(Exception):
    """An application's exception carrying a ``context``, as triggerhooks' own do."""

    def __init__(self, message: str, context: Any) -> None:
        super().__init__(message)
        self.context = context


@trigger_task(name="tests.recovery.deep")
def deep_result(context: TaskContext) -> dict[str, Any]:
    return nested(int(context.trigger_kwargs["go"]["levels"]))


@trigger_task(name="tests.recovery.surrogate")
def surrogate_message(context: TaskContext) -> dict[str, Any]:
    raise ValueError("cannot read caf\udc80.txt")


@trigger_task(name="tests.recovery.status_surrogate")
def status_surrogate(context: TaskContext) -> Any:
    return StatusChange("finished", {"note": "caf\udc80"}, cascade=True)


@trigger_task(name="tests.recovery.status_object")
def status_object(context: TaskContext) -> Any:
    raise StatusChange("skipped", {"why": object()})


@trigger_task(name="tests.recovery.status_deep")
def status_deep(context: TaskContext) -> Any:
    return StatusChange("finished", {"deep": nested(300)})


@trigger_task(name="tests.recovery.fail_unprintable_context")
def fail_unprintable_context(context: TaskContext) -> Any:
    raise ContextError("failed \udc80", Unprintable())


@trigger_task(name="tests.recovery.retry_unprintable_context")
def retry_unprintable_context(context: TaskContext) -> Any:
    raise context.retry(exc=ContextError("retry me", Unprintable()))


@trigger_task(name="tests.recovery.retry_deep_context")
def retry_deep_context(context: TaskContext) -> Any:
    raise context.retry(exc=ContextError("retry me", nested(2000)))


@trigger_task(name="tests.recovery.retry_too_deep_to_store")
def retry_too_deep_to_store(context: TaskContext) -> Any:
    raise context.retry(exc=ContextError("retry \udc80", nested(253)))


class BadlyNamed(Exception):
    """Its qualified name has a lone surrogate (as a class made from a file's name may)."""


BadlyNamed.__qualname__ = "Caf\udc80Error"


@trigger_task(name="tests.recovery.badly_named")
def badly_named(context: TaskContext) -> Any:
    raise BadlyNamed("its type's name has a lone surrogate")


@trigger_task(name="tests.recovery.retry_replacement")
def retry_replacement(context: TaskContext) -> Any:
    raise context.retry(exc=ValueError("again"), replacement_kwargs={"when": object()})



UNSTORABLE = {
    # case: (task, fire kwargs, {instance: (exceptionType, text in exceptionInfo)})
    # A result nested deeper than stored values may be (serialization.MAX_DEPTH) is refused
    # where it is produced, naming where, not downstream when its cascade is stored.
    "result 252 levels deep": ("tests.recovery.deep", {"levels": 252}, {
        "t#0": ("triggerhooks.exceptions.InvalidTaskResultError",
                "result of t#0 cannot be stored: nested more than 200 levels deep")}),
    "result 253 levels deep": ("tests.recovery.deep", {"levels": 253}, {
        "t#0": ("triggerhooks.exceptions.InvalidTaskResultError",
                "result of t#0 cannot be stored: nested more than 200 levels deep")}),
    "result 256 levels deep": ("tests.recovery.deep", {"levels": 256}, {
        "t#0": ("triggerhooks.exceptions.InvalidTaskResultError",
                "result of t#0 cannot be stored: nested more than 200 levels deep")}),
    "message with a lone surrogate": ("tests.recovery.surrogate", {}, {
        "t#0": ("ValueError", "ValueError: cannot read caf\\udc80.txt")}),
    "status change metadata with a lone surrogate": ("tests.recovery.status_surrogate", {}, {
        "t#0": ("triggerhooks.exceptions.UnstorableKwargsError",
                "metadata of t#0 cannot be stored as JSON")}),
    "status change metadata of an object": ("tests.recovery.status_object", {}, {
        "t#0": ("triggerhooks.exceptions.UnstorableKwargsError",
                "metadata of t#0 cannot be stored as JSON")}),
    "status change metadata 300 levels deep": ("tests.recovery.status_deep", {}, {
        "t#0": ("triggerhooks.exceptions.UnstorableKwargsError",
                "metadata of t#0 cannot be stored: nested more than 200 levels deep")}),
    "failure whose context has no repr": ("tests.recovery.fail_unprintable_context", {}, {
        "t#0": ("tests.core.test_recovery.ContextError", "ContextError: failed \\udc80")}),
    "retry whose context has no repr": ("tests.recovery.retry_unprintable_context", {}, {
        "t#3": ("triggerhooks.exceptions.MaxRetriesExceeded", "gave up after 3 retries")}),
    "retry whose context is too deep to repr": ("tests.recovery.retry_deep_context", {}, {
        "t#3": ("triggerhooks.exceptions.MaxRetriesExceeded", "gave up after 3 retries")}),
    "retry whose failure is too deep to store": ("tests.recovery.retry_too_deep_to_store", {}, {
        "t#0": ("triggerhooks.exceptions.InvalidTaskResultError",
                "the retry of t#0 cannot be stored")}),
    "exception type named with a lone surrogate": ("tests.recovery.badly_named", {}, {
        "t#0": ("tests.core.test_recovery.Caf\\udc80Error",
                "Caf\\udc80Error: its type's name has a lone surrogate")}),
    "retry whose replacement kwargs cannot be stored": ("tests.recovery.retry_replacement", {}, {
        "t#0": ("triggerhooks.exceptions.UnstorableKwargsError",
                "replacement kwargs of t#0 cannot be stored as JSON")}),
}


@pytest.mark.parametrize("case", list(UNSTORABLE))
def test_an_outcome_the_storage_cannot_hold_ends_the_instance_failed_with_a_readable_reason(
        storage: StorageBackend, case: str) -> None:
    """How the cases with a context went wrong before the fix: a context that JSON cannot
    hold was described by repr(); a repr that raises (or recurses too deep) escaped from
    execute(): the instance stayed running until its lease expired, and fire() raised."""
    task, kwargs, expected = UNSTORABLE[case]
    manager = TriggerManager(storage)
    manager.update_configuration({"t": {"after": ["go"], "run": task},
                                  "echo": {"after": ["t"], "run": "tests.echo"}})

    firing = manager.fire("go", kwargs)  # never raises a task's problem

    assert firing.scheduled == ("t#0",)
    assert open_work(storage) == {}
    failed = {i.name: i for i in storage if i.status is TaskStatus.FAILED}
    assert set(failed) == set(expected)
    for name, (error, text) in expected.items():
        meta = failed[name].metadata
        assert meta["exceptionType"] == error
        info = meta["exceptionInfo"]
        assert isinstance(info, str) and text in info, info[-500:]
        info.encode("utf-8")  # readable anywhere: no lone surrogate left
    assert manager.stuck() == [] and manager.recover() == []


# -- errors raised after a commit ------------------------------------------------------------------


def test_an_error_after_a_fire_was_stored_says_it_was_committed_and_what_it_scheduled(
        storage: StorageBackend, isolated_signals: None) -> None:
    manager = TriggerManager(storage)
    manager.update_configuration({"t": {"after": ["go"], "run": "tests.noop"},
                                  "u": {"after": ["go"], "run": "tests.noop"}})

    def refuse(sender: Any, trigger_name: str, **kwargs: Any) -> None:
        if trigger_name == "go":
            raise RuntimeError("the audit log is full")

    with connected(refuse, post_fire, raise_exception=True), \
            pytest.raises(SignalHandlingError) as caught:
        manager.fire("go", {"n": 1})

    error = caught.value
    assert error.committed is True and error.scheduled == ("t#0", "u#0")
    assert [str(exc) for exc in error.caught_exceptions] == ["the audit log is full"]
    assert storage.latest_kwargs["go"] == {"n": 1}
    assert statuses(storage) == {"t#0": "finished", "u#0": "finished"}  # handed off all the same
    assert storage.is_finalized


def test_errors_after_other_calls_were_stored_say_so_too(
        storage: StorageBackend, held: type[HoldingRunner], isolated_signals: None) -> None:
    """A configuration, a replay, a skip and a status change: each raises its receivers'
    errors after its change was stored, marked committed with what it scheduled."""
    manager = TriggerManager(storage, task_runner="held")

    def refuse(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("the audit log is full")

    with connected(refuse, configuration_updated, raise_exception=True), \
            pytest.raises(SignalHandlingError) as configured:
        manager.update_configuration({"t": {"after": ["go"], "run": "tests.boom"},
                                      "ready": {"after": [], "andEvery": "tick",
                                                "run": "tests.noop"}})
    assert (configured.value.committed, configured.value.scheduled) == (True, ())
    assert set(storage.tasks) == {"t", "ready"}
    manager.fire("go")
    assert held.release()[0].status is TaskStatus.FAILED  # type: ignore[union-attr]

    with connected(refuse, post_replay, raise_exception=True), \
            pytest.raises(SignalHandlingError) as replayed:
        manager.replay_failed_instance("t#0")
    assert (replayed.value.committed, replayed.value.scheduled) == (True, ("t#1",))
    assert storage["t#1"].status is TaskStatus.SCHEDULED and held.names() == ["t#1"]

    step(storage, "t#1", lambda t: t.claim("t#1"))
    step(storage, "t#1", lambda t: t.fail("t#1", {}, 0))
    with connected(refuse, post_skip, raise_exception=True), \
            pytest.raises(SignalHandlingError) as skipped:
        manager.skip_failed_instance("t#1", cascade=True)
    assert skipped.value.committed is True and storage["t#1"].status is TaskStatus.SKIPPED
    assert "t" in storage.latest_kwargs

    with connected(refuse, task_scheduled, raise_exception=True), \
            pytest.raises(SignalHandlingError) as rescheduled:
        manager.update_instance_status("t#0", "scheduled")
    assert (rescheduled.value.committed, rescheduled.value.scheduled) == (True, ("t#0",))
    assert held.names() == ["t#1", "t#0"]  # handed off all the same


def test_an_error_before_a_fire_was_stored_says_nothing_was(
        storage: StorageBackend, isolated_signals: None) -> None:
    manager = TriggerManager(storage)
    manager.update_configuration({"t": {"after": ["go"], "run": "tests.noop"}})

    def refuse(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("not now")

    with connected(refuse, pre_fire, raise_exception=True), \
            pytest.raises(SignalHandlingError) as caught:
        manager.fire("go", {"n": 1})

    assert caught.value.committed is False and caught.value.scheduled == ()
    assert "go" not in storage.latest_kwargs and list(storage) == []
    manager.fire("go", {"n": 2})  # nothing half-done stands in the way
    assert storage.latest_kwargs["go"] == {"n": 2} and statuses(storage) == {"t#0": "finished"}


def test_a_failed_hand_off_says_it_was_committed_and_a_recovery_runs_the_instance_once(
        storage: StorageBackend, runs: Path) -> None:
    with registered_class(task_runners, "failing", FailingRunner):
        manager = TriggerManager(storage, task_runner="failing")
        manager.update_configuration(chain(runs))
        with pytest.raises(ConnectionError, match="the broker is down") as caught:
            manager.fire("go")
    error: Any = caught.value
    assert (error.committed, error.scheduled) == (True, ("t#0",))
    assert statuses(storage) == {"t#0": "scheduled"}

    recovering = TriggerManager(storage, claim_grace_seconds=GRACE)
    wait_for(recovering.stuck, 10, "the grace time")
    assert recovering.recover() == [Recovery("handed off", "t#0", "unclaimed")]
    assert started(runs) == Counter({"t#0": 1, "next#0": 1})
    assert open_work(storage) == {} and storage.is_finalized


def test_a_failed_hand_off_of_a_recovery_is_raised_after_the_others_were_handed_off(
        storage: StorageBackend, dropping: type[DroppingRunner], runs: Path) -> None:
    """One runner that is down keeps no other instance from being recovered."""
    with registered_class(task_runners, "failing", FailingRunner):
        lost = TriggerManager(storage, task_runner="dropping", claim_grace_seconds=GRACE)
        lost.update_configuration({
            "a": {"after": ["go"], "run": RECORD, "withParams": with_record(runs),
                  "using": "failing"},
            "b": {"after": ["go"], "run": RECORD, "withParams": with_record(runs)}})
        with pytest.raises(ConnectionError):
            lost.fire("go")
        wait_for(lambda: len(lost.stuck()) == 2, 10, "the grace time")
        recovering = TriggerManager(storage, claim_grace_seconds=GRACE)
        with pytest.raises(ConnectionError) as caught:
            recovering.recover()
    assert caught.value.committed is True  # type: ignore[attr-defined]
    assert statuses(storage) == {"a#0": "scheduled", "b#0": "finished"}
    assert started(runs) == Counter({"b#0": 1})


# -- fire keys (on the storages that keep them) ----------------------------------------------------


@pytest.fixture
def keyed(storage: StorageBackend) -> StorageBackend:
    if not storage.supports_fire_keys:
        pytest.skip(f"{type(storage).__name__} does not keep fire keys yet")
    return storage


def test_a_repeated_fire_key_changes_nothing_and_answers_the_first_firing(
        keyed: StorageBackend, runs: Path) -> None:
    manager = TriggerManager(keyed)
    manager.update_configuration({"page": {"after": ["start"], "andEvery": "tick", "run": RECORD,
                                           "withParams": with_record(runs)}})
    manager.fire("start")
    first = manager.fire("tick", {"n": 1}, key="tick-1")
    assert (first.scheduled, first.repeated, first.key) == (("page#0",), False, "tick-1")

    again = manager.fire("tick", {"n": 1}, key="tick-1")

    assert again == first._replace(repeated=True)
    assert started(runs) == Counter({"page#0": 1}) and statuses(keyed) == {"page#0": "finished"}
    with pytest.raises(FireKeyReusedError, match="first used with other kwargs") as reused:
        manager.fire("tick", {"n": 2}, key="tick-1")
    assert reused.value.committed is False
    with pytest.raises(FireKeyReusedError, match="first used for a firing of 'tick', not 'start'"):
        manager.fire("start", {"n": 1}, key="tick-1")
    assert started(runs) == Counter({"page#0": 1}) and keyed.latest_kwargs["tick"] == {"n": 1}


def test_a_keyed_fire_whose_hand_off_failed_is_left_to_a_recovery_when_retried(
        keyed: StorageBackend, runs: Path) -> None:
    """A repeat changes nothing, the hand-off included: the instance waits for a recovery."""
    with registered_class(task_runners, "failing", FailingRunner):
        failing = TriggerManager(keyed, task_runner="failing")
        failing.update_configuration(chain(runs))
        with pytest.raises(ConnectionError) as caught:
            failing.fire("go", key="go-1")
        assert caught.value.committed is True  # type: ignore[attr-defined]
    manager = TriggerManager(keyed, claim_grace_seconds=GRACE)  # inline, as it works again

    again = manager.fire("go", key="go-1")

    assert again.repeated and again.scheduled == ("t#0",)
    assert statuses(keyed) == {"t#0": "scheduled"} and started(runs) == Counter()
    wait_for(manager.stuck, 10, "the grace time")
    assert manager.recover() == [Recovery("handed off", "t#0", "unclaimed")]
    assert started(runs) == Counter({"t#0": 1, "next#0": 1})


def test_a_keyed_fire_that_raised_after_its_commit_is_retried_safely(
        keyed: StorageBackend, runs: Path, isolated_signals: None) -> None:
    manager = TriggerManager(keyed)
    manager.update_configuration({"page": {"after": [], "andEvery": "tick", "run": RECORD,
                                           "withParams": with_record(runs)}})

    def refuse(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("the audit log is full")

    with connected(refuse, post_fire, raise_exception=True), \
            pytest.raises(SignalHandlingError) as caught:
        manager.fire("tick", {"n": 1}, key="k")
    assert (caught.value.committed, caught.value.scheduled) == (True, ("page#0",))

    retried = manager.fire("tick", {"n": 1}, key="k")  # the caller could not know: it retries

    assert retried.repeated and retried.scheduled == ("page#0",)
    assert started(runs) == Counter({"page#0": 1}) and len(keyed) == 1


def test_fire_without_key_support_refuses_a_key(storage: StorageBackend) -> None:
    if storage.supports_fire_keys:
        pytest.skip(f"{type(storage).__name__} keeps fire keys")
    manager = TriggerManager(storage)
    manager.update_configuration({"t": {"after": ["go"], "run": "tests.noop"}})
    with pytest.raises(NotImplementedError, match="does not keep fire keys"):
        manager.fire("go", key="k")
    assert list(storage) == [] and "go" not in storage.latest_kwargs


# -- recovery with the threading runner ------------------------------------------------------------


def test_recovery_hands_off_to_the_threading_runner(
        storage: StorageBackend, dropping: type[DroppingRunner], runs: Path) -> None:
    lost = TriggerManager(storage, task_runner="dropping")
    lost.update_configuration(chain(runs))
    lost.fire("go")
    threaded = TriggerManager(storage, task_runner="threading", claim_grace_seconds=GRACE)
    wait_for(threaded.stuck, 10, "the grace time")
    recovered = threaded.recover()
    settle()
    # The chain may end on its thread while the recovery goes on: then the recovery
    # finalizes the session rather than the last task (once, either way).
    assert recovered[0] == Recovery("handed off", "t#0", "unclaimed")
    assert recovered[1:] in ([], [Recovery("finalized", None, "every task is resolved")])
    assert started(runs) == Counter({"t#0": 1, "next#0": 1})
    assert open_work(storage) == {} and storage.is_finalized
