"""Leased claims: a running instance whose worker died is taken over; it still ends exactly once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from triggerhooks import TaskStatus, TriggerManager, WorkerLostError, capture_signals, trigger_task
from triggerhooks.core.leases import DEFAULT_MAX_ATTEMPTS, Claim, Lease, claim_of
from triggerhooks.core.rules import Transition
from triggerhooks.signals import task_failed
from triggerhooks.storages import Commit, Plan, StorageBackend
from triggerhooks.task import StatusChange, TaskContext, trigger_tasks
from triggerhooks.testing import HoldingRunner, expire_claim, run_transition, wait_for


@pytest.fixture
def holding(storage: StorageBackend, held: type[HoldingRunner]) -> TriggerManager:
    return TriggerManager(storage, task_runner="held")


def step(storage: StorageBackend, name: str, body: Callable[[Transition], Any]) -> Commit:
    """One transition that reads the instance ``name``."""
    return run_transition(storage, Plan(instances=(name,)), body)


def claim_as_dead_worker(storage: StorageBackend, name: str, seconds: float) -> Claim:
    """Claim ``name`` the way a worker does, then never run it: the worker died."""
    commit = step(storage, name, lambda t: t.claim(name, Lease(seconds, "dead@host")))
    assert commit.changes.result is not None
    found = claim_of(storage[name])
    assert found is not None
    return found


def lose_workers(storage: StorageBackend, name: str, *workers: str,
                 max_attempts: int | None = DEFAULT_MAX_ATTEMPTS) -> Claim:
    """Each worker in turn claims (or takes over) ``name`` and dies: its lease expires."""
    def claim(lease: Lease) -> Callable[[Transition], Any]:
        return lambda t: t.claim(name, lease)

    for worker in workers:
        claimed = step(storage, name, claim(Lease(30, worker, max_attempts=max_attempts)))
        assert claimed.changes.result is not None, f"{worker} could not claim {name}"
        last = expire_claim(storage, name)
    return last


runs: list[tuple[str, int]] = []
gate = threading.Event()


@trigger_task(name="tests.claims.record")
def record(context: TaskContext) -> dict[str, Any]:
    claim = claim_of(context.task_instance)
    runs.append((context.task_instance.name, claim.attempt if claim else 0))
    return {"attempt": claim.attempt if claim else 0}


@trigger_task(name="tests.claims.wait")
def wait_for_gate(context: TaskContext) -> dict[str, Any]:
    gate.wait(10)
    return {"waited": True}


@pytest.fixture(autouse=True)
def _reset() -> None:
    runs.clear()
    gate.clear()


CONFIG = {"t": {"after": ["go"], "run": "tests.claims.record"},
          "next": {"after": ["t"], "run": "tests.claims.record"}}


def test_a_leased_claim_is_recorded_with_worker_attempt_and_expiry(holding: TriggerManager) -> None:
    holding.update_configuration(CONFIG)
    holding.fire("go")
    done = holding.execute("t#0", lease=30, worker="w1@host")
    assert done is not None and done.status is TaskStatus.FINISHED
    claim = claim_of(done)
    assert claim is not None
    assert (claim.worker, claim.attempt) == ("w1@host", 1)
    assert claim.remaining(claim.claimed_at) == pytest.approx(30, abs=0.01)
    assert done.metadata["result"] == {"attempt": 1}


def test_without_a_lease_nothing_is_recorded_and_a_running_instance_is_never_taken(
        holding: TriggerManager) -> None:
    holding.update_configuration(CONFIG)
    holding.fire("go")
    step(holding.storage, "t#0", lambda t: t.claim("t#0"))  # a runner without leases
    assert claim_of(holding.storage["t#0"]) is None
    assert holding.execute("t#0", lease=0.01, worker="w2") is None
    assert holding.storage["t#0"].status is TaskStatus.RUNNING
    assert runs == []


def test_a_running_instance_whose_lease_is_alive_is_left_alone(holding: TriggerManager) -> None:
    holding.update_configuration(CONFIG)
    holding.fire("go")
    claim_as_dead_worker(holding.storage, "t#0", 30)
    assert holding.execute("t#0", lease=30, worker="w2@host") is None
    assert holding.storage["t#0"].status is TaskStatus.RUNNING
    assert runs == []


def test_an_expired_lease_is_taken_over_and_the_instance_ends_exactly_once(
        holding: TriggerManager, held: type[HoldingRunner]) -> None:
    holding.update_configuration(CONFIG)
    holding.fire("go")
    dead = claim_as_dead_worker(holding.storage, "t#0", 0.05)
    wait_for(lambda: dead.expired(_now()), timeout=5, message="the lease to expire")

    done = holding.execute("t#0", lease=30, worker="w2@host")

    assert done is not None and done.status is TaskStatus.FINISHED
    claim = claim_of(done)
    assert claim is not None and (claim.worker, claim.attempt) == ("w2@host", 2)
    assert claim.token != dead.token
    assert runs == [("t#0", 2)]
    assert held.names() == ["t#0", "next#0"]  # the cascade, once
    # A second redelivery of the same message finds it finished: nothing happens.
    assert holding.execute("t#0", lease=30, worker="w3@host") is None
    assert runs == [("t#0", 2)]
    assert held.names() == ["t#0", "next#0"]


def test_a_worker_that_lost_its_claim_cannot_store_an_outcome(holding: TriggerManager) -> None:
    holding.update_configuration(CONFIG)
    holding.fire("go")
    old = claim_as_dead_worker(holding.storage, "t#0", 0.05)
    wait_for(lambda: old.expired(_now()), timeout=5, message="the lease to expire")
    new = step(holding.storage, "t#0", lambda t: t.claim("t#0", Lease(30, "w2")))
    assert new.changes.result is not None
    storage = holding.storage

    # The first worker was only slow: every ending it tries is refused.
    assert not step(storage, "t#0", lambda t: t.complete("t#0", b"{}", 0, token=old.token)).changes.result
    assert step(storage, "t#0", lambda t: t.fail("t#0", {}, 0, None, old.token)).changes.result is None
    assert not step(storage, "t#0", lambda t: t.renew("t#0", old.token, 30)).changes.result
    assert storage["t#0"].status is TaskStatus.RUNNING
    assert storage.latest_kwargs.get("t") is None

    token = claim_of(storage["t#0"]).token  # type: ignore[union-attr]
    assert step(storage, "t#0", lambda t: t.complete("t#0", b'{"x": 1}', 0, token=token)).changes.result
    assert storage["t#0"].status is TaskStatus.FINISHED
    assert storage.latest_kwargs["t"] == {"x": 1}


@contextmanager
def running_in_a_thread(manager: TriggerManager, name: str, worker: str) -> Iterator[list[Any]]:
    """``execute(name)`` as ``worker`` with a 0.3s lease, in a thread: the block runs once the
    instance is running; then ``gate`` opens and the thread ends (its result in the list)."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(
        manager.execute(name, lease=0.3, worker=worker)))
    thread.start()
    try:
        wait_for(lambda: manager.storage[name].status is TaskStatus.RUNNING, timeout=5)
        yield result
    finally:
        gate.set()
        thread.join(10)


@trigger_task(name="tests.claims.status")
def status_task(context: TaskContext) -> Any:
    gate.wait(10)
    return StatusChange("finished", cascade=True, cascade_kwargs={"by": "slow"})


def test_a_status_change_after_a_takeover_changes_nothing(
        holding: TriggerManager, held: type[HoldingRunner]) -> None:
    holding.update_configuration({"s": {"after": ["go"], "run": "tests.claims.status"}})
    holding.fire("go")
    with running_in_a_thread(holding, "s#0", worker="slow"):
        # The heartbeat renews every 0.1s; stop it from renewing by taking over "by force":
        # a second claimant can only get in once the lease really expired, so expire it by hand.
        stolen = Lease(30, "other")
        step(holding.storage, "s#0", lambda t: t.put(
            t.instance("s#0"), TaskStatus.RUNNING,
            metadata={"claim": Claim.start(stolen, 2, t.now).to_json()}))
    current = holding.storage["s#0"]
    assert current.status is TaskStatus.RUNNING  # the slow worker's StatusChange was refused
    assert claim_of(current).worker == "other"  # type: ignore[union-attr]
    assert "s" not in holding.storage.latest_kwargs  # and its cascade never fired


def test_the_heartbeat_keeps_a_long_task_from_being_taken_over(
        holding: TriggerManager) -> None:
    holding.update_configuration({"w": {"after": ["go"], "run": "tests.claims.wait"}})
    holding.fire("go")
    with running_in_a_thread(holding, "w#0", worker="busy") as result:
        first = claim_of(holding.storage["w#0"])
        assert first is not None
        # Wait past the first lease: renewals pushed the expiry on, so no takeover is possible.
        wait_for(lambda: first.expired(_now()), timeout=5, message="the first lease's expiry")
        renewed = claim_of(holding.storage["w#0"])
        assert renewed is not None and renewed.expires_at > first.expires_at
        assert holding.execute("w#0", lease=0.3, worker="thief") is None
    assert result[0].status is TaskStatus.FINISHED
    assert claim_of(result[0]).worker == "busy"  # type: ignore[union-attr]


def test_an_instance_whose_workers_keep_dying_fails_instead_of_starting_again(
        holding: TriggerManager, held: type[HoldingRunner]) -> None:
    holding.update_configuration(CONFIG)
    holding.fire("go")
    assert DEFAULT_MAX_ATTEMPTS == 3
    lose_workers(holding.storage, "t#0", "w1@host", "w2@host")
    third = step(holding.storage, "t#0", lambda t: t.claim("t#0", Lease(30, "w3@host")))
    assert third.changes.result is not None
    # At the limit but alive: left alone, as any live lease.
    assert holding.execute("t#0", lease=30, worker="w4@host") is None
    assert holding.storage["t#0"].status is TaskStatus.RUNNING
    last = expire_claim(holding.storage, "t#0")

    with capture_signals() as sent:
        failed = holding.execute("t#0", lease=30, worker="w4@host")

    assert failed is not None and failed.status is TaskStatus.FAILED
    assert failed == holding.storage["t#0"]
    assert runs == []  # the task was not started a fourth time
    meta = failed.metadata
    assert meta["exceptionType"] == "triggerhooks.exceptions.WorkerLostError"
    assert meta["exceptionType"] == f"{WorkerLostError.__module__}.{WorkerLostError.__name__}"
    assert meta["exceptionInfo"] == (
        "triggerhooks.exceptions.WorkerLostError: t#0 lost its worker on each of its 3 attempts "
        "(at most 3): its lease expired while it ran on w1@host, w2@host, w3@host. "
        "Replay or skip it.\n")
    assert meta["exceptionContext"] == {"attempts": 3, "maxAttempts": 3,
                                        "workers": ["w1@host", "w2@host", "w3@host"]}
    assert claim_of(failed) == last  # the claim that expired last stays, as it was
    assert (last.worker, last.attempt, last.lost) == ("w3@host", 3, ("w1@host", "w2@host"))
    assert set(meta["timestamps"]) == {"unstarted", "scheduled", "running", "failed"}
    assert failed.can_replay and failed.can_skip

    # One transition, one signal: task_failed from the task's class, without an exception.
    assert sent.names == ["task_failed"]
    (notice,) = sent.of(task_failed)
    assert notice.sender is trigger_tasks.get_class("tests.claims.record")
    assert notice["task_instance"] == failed and notice["exception"] is None
    assert "t" not in holding.storage.latest_kwargs  # no cascade
    assert held.names() == ["t#0"]

    # Later copies of the message and the last worker, if it was only slow, change nothing.
    assert holding.execute("t#0", lease=30, worker="w5@host") is None
    assert not step(holding.storage, "t#0",
                    lambda t: t.complete("t#0", b"{}", 0, token=last.token)).changes.result
    assert holding.storage["t#0"] == failed

    # An operator replays it: the copy starts afresh, at attempt 1.
    copy = holding.replay_failed_instance("t#0")
    done = holding.execute(copy.name, lease=30, worker="w5@host")
    assert done is not None and done.status is TaskStatus.FINISHED
    assert claim_of(done).attempt == 1  # type: ignore[union-attr]
    assert runs == [("t#1", 1)]
    assert held.names() == ["t#0", "t#1", "next#0"]


def test_with_one_attempt_an_expired_lease_is_never_taken_over(holding: TriggerManager) -> None:
    holding.update_configuration(CONFIG)
    holding.fire("go")
    lose_workers(holding.storage, "t#0", "w1", max_attempts=1)
    failed = holding.execute("t#0", lease=30, worker="w2", max_attempts=1)
    assert failed is not None and failed.status is TaskStatus.FAILED
    assert runs == []
    assert "t#0 lost its worker on each of its 1 attempt (at most 1): its lease expired while " \
           "it ran on w1." in failed.metadata["exceptionInfo"]


def test_without_a_limit_takeovers_go_on_and_remember_the_lost_workers(
        holding: TriggerManager) -> None:
    holding.update_configuration(CONFIG)
    holding.fire("go")
    lost = [f"w{n}" for n in range(1, 7)]
    lose_workers(holding.storage, "t#0", *lost, max_attempts=None)

    done = holding.execute("t#0", lease=30, worker="w7", max_attempts=None)

    assert done is not None and done.status is TaskStatus.FINISHED
    claim = claim_of(done)
    assert claim is not None and (claim.worker, claim.attempt, claim.lost) == ("w7", 7, tuple(lost))
    assert done.metadata["claim"]["lostWorkers"] == lost
    assert runs == [("t#0", 7)]


def test_workers_without_names_are_counted_all_the_same(holding: TriggerManager) -> None:
    holding.update_configuration(CONFIG)
    holding.fire("go")
    for _ in range(2):
        step(holding.storage, "t#0", lambda t: t.claim("t#0", Lease(30, max_attempts=2)))
        expire_claim(holding.storage, "t#0")
    failed = holding.execute("t#0", lease=30, max_attempts=2)
    assert failed is not None and failed.status is TaskStatus.FAILED
    assert "ran on workers that gave no name" in failed.metadata["exceptionInfo"]
    assert failed.metadata["exceptionContext"]["workers"] == [None, None]


def test_a_lease_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Lease(0)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_max_attempts_is_a_positive_integer_or_none(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_attempts must be a positive integer or None"):
        Lease(30, max_attempts=bad)
    assert Lease(30, max_attempts=None).max_attempts is None
    assert Lease(30).max_attempts == DEFAULT_MAX_ATTEMPTS


def _now() -> str:
    from triggerhooks.models import utcnow

    return utcnow()
