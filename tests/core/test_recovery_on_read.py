"""A change by hand that reads a stuck instance recovers it, on every backend."""

from __future__ import annotations

import pytest

from triggerhooks import InvalidStatusError, StorageBackend, TriggerManager
from triggerhooks.core.leases import Lease
from triggerhooks.core.rules import transition
from triggerhooks.storages import Plan
from triggerhooks.testing.contract import ECHO
from triggerhooks.testing.runners import holding_runner
from triggerhooks.testing.transitions import expire_claim
from triggerhooks.testing.waiting import wait_for


def _lose_hand_off(manager: TriggerManager, kwargs: dict[str, int] | None = None) -> None:
    """Fire ``a`` into a task whose hand-off is lost: ``t#0`` stays scheduled."""
    with holding_runner() as held:
        manager.update_configuration({"t": {"after": ["a"], "run": ECHO, "using": held.name}})
        manager.fire("a", kwargs)
        held.drop()


def _claim(storage: StorageBackend, worker: str) -> None:
    """``t#0`` claimed by ``worker`` (with a 30 s lease), as a worker about to run it would."""
    storage.transact(Plan(instances=("t#0",)),
                     transition(lambda step: step.claim("t#0", Lease(30, worker))))


def _until_stuck(manager: TriggerManager) -> None:
    wait_for(manager.stuck, 10, "the instance to count as stuck", interval=0.001)


def test_a_metadata_update_on_a_lost_hand_off_runs_it(storage: StorageBackend) -> None:
    manager = TriggerManager(storage, claim_grace_seconds=0.001)
    _lose_hand_off(manager, {"x": 1})
    manager.update_configuration({"t": {"after": ["a"], "run": ECHO}})
    _until_stuck(manager)
    manager.update_instance_metadata("t#0", {"note": "looked at"})
    instance = storage["t#0"]
    assert instance.status == "finished" and instance.metadata["note"] == "looked at"
    assert instance.metadata["recovered"]["count"] == 1
    assert instance.metadata["claim"]["attempt"] == 1


def test_a_status_set_by_hand_on_a_lost_worker_s_instance_hands_it_off_once(
        storage: StorageBackend) -> None:
    manager = TriggerManager(storage, claim_grace_seconds=0.001)
    _lose_hand_off(manager)
    # A worker claims it and dies: running, its lease expired.
    _claim(storage, "dead")
    expire_claim(storage, "t#0")
    manager.update_configuration({"t": {"after": ["a"], "run": ECHO}})
    manager.update_instance_status("t#0", "scheduled")
    instance = storage["t#0"]
    assert instance.status == "finished"
    assert instance.metadata["claim"]["attempt"] == 1  # claimed afresh from scheduled
    assert instance.metadata["recovered"]["count"] == 1


def test_a_healthy_instance_read_by_hand_is_left_alone(storage: StorageBackend) -> None:
    manager = TriggerManager(storage, claim_grace_seconds=60)
    with holding_runner() as held:
        manager.update_configuration({"t": {"after": ["a"], "run": ECHO, "using": held.name}})
        manager.fire("a")
        manager.update_instance_metadata("t#0", {"note": 1})
        assert held.names() == ["t#0"]  # handed off once, at the fire
        instance = storage["t#0"]
        assert instance.status == "scheduled" and "recovered" not in instance.metadata
        held.release()
    assert storage["t#0"].status == "finished"


def test_a_running_instance_with_a_live_lease_refuses_a_status_by_hand_unless_forced(
        storage: StorageBackend) -> None:
    manager = TriggerManager(storage)
    _lose_hand_off(manager)
    _claim(storage, "w1")
    with pytest.raises(InvalidStatusError, match=r"t#0 is running on w1 \(attempt 1\).*force=True"):
        manager.update_instance_status("t#0", "scheduled")
    assert storage["t#0"].status == "running"
    manager.update_instance_metadata("t#0", {"note": 1})  # metadata is not a status
    assert manager.update_instance_status("t#0", "failed", force=True).status == "failed"
    assert storage["t#0"].metadata["claim"]["worker"] == "w1"


def test_a_running_instance_whose_lease_expired_takes_a_status_by_hand(
        storage: StorageBackend) -> None:
    manager = TriggerManager(storage)
    _lose_hand_off(manager)
    _claim(storage, "w1")
    expire_claim(storage, "t#0")
    assert manager.update_instance_status("t#0", "skipped").status == "skipped"
