"""The toolbox's helpers for the suite's own kind of tests: the holding runner, a transition
run by hand, an expired lease, a class registered for one block."""

from __future__ import annotations

import pytest

from triggerhooks import TriggerManager
from triggerhooks.core.leases import Lease, claim_of
from triggerhooks.manager import trigger_managers
from triggerhooks.runners import task_runners
from triggerhooks.storages import Plan, StorageBackend
from triggerhooks.testing import (
    HeldInstance,
    HoldingRunner,
    expire_claim,
    holding_runner,
    registered_class,
    run_transition,
)


def test_a_holding_runner_keeps_instances_scheduled_until_released(
        storage: StorageBackend) -> None:
    with holding_runner("tests.hold") as held:
        manager = TriggerManager(storage, task_runner="tests.hold")
        manager.update_configuration({"t": {"after": ["a"], "run": "tests.noop"},
                                      "u": {"after": ["t"], "run": "tests.noop"}})
        manager.fire("a")
        assert held.held == [HeldInstance(manager, "t#0", 0.0)]
        assert storage["t#0"].status == "scheduled"
        released = held.release()  # t#0, then u#0 that its cascade handed to the runner
        assert [instance.name for instance in released if instance] == ["t#0", "u#0"]
        assert held.held == [] and storage["u#0"].status == "finished"
    assert "tests.hold" not in task_runners


def test_each_block_holds_its_own_instances(storage: StorageBackend) -> None:
    with holding_runner("one") as one, holding_runner("two") as two:
        manager = TriggerManager(storage)
        manager.update_configuration({"t": {"after": ["a"], "using": "one", "run": "tests.noop"},
                                      "u": {"after": ["a"], "using": "two", "run": "tests.noop"}})
        manager.fire("a")
        assert (one.names(), two.names()) == (["t#0"], ["u#0"])
        assert one.release()[0] is not None and two.names() == ["u#0"]


def test_run_transition_commits_what_the_body_did_and_returns_its_result(
        storage: StorageBackend) -> None:
    TriggerManager(storage).update_configuration({"t": {"after": ["a"], "run": "tests.noop"}})
    commit = run_transition(storage, Plan(trigger="a"), lambda step: step.fire("a", b'{"x": 1}'))
    assert commit.changes.result is True
    assert storage.latest_kwargs["a"] == {"x": 1}
    assert storage["t#0"].status == "scheduled"  # no runner was called


def test_expire_claim_lets_another_worker_take_the_instance_over(
        storage: StorageBackend, held: type[HoldingRunner]) -> None:
    manager = TriggerManager(storage, task_runner="held")
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.noop"}})
    manager.fire("a")
    with pytest.raises(ValueError, match="t#0 holds no leased claim"):
        expire_claim(storage, "t#0")
    run_transition(storage, Plan(instances=("t#0",)), lambda step: step.claim("t#0", Lease(30, "w1")))
    assert manager.execute("t#0", lease=30, worker="w2") is None  # w1's lease is alive
    expired = expire_claim(storage, "t#0")
    assert expired.worker == "w1" and claim_of(storage["t#0"]) == expired
    done = manager.execute("t#0", lease=30, worker="w2")
    assert done is not None and claim_of(done).attempt == 2  # type: ignore[union-attr]


class Audited(TriggerManager):
    pass


def test_registered_class_unregisters_even_when_the_block_fails() -> None:
    with pytest.raises(RuntimeError), registered_class(trigger_managers, "tests.audited", Audited):
        assert trigger_managers.get_class("tests.audited") is Audited
        raise RuntimeError("the test failed")
    assert "tests.audited" not in trigger_managers
