"""Triggers fired here, tasks run by real Celery workers sharing one session storage."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime

import orjson
import pytest
import redis
from celery_test_tasks import RELEASE, RetryOnce
from celery_testing import PREFIX, Fleet, runs, wait_for
from triggerhooks_celery import CeleryTaskRunner

from triggerhooks import StorageBackend, TaskStatus, TriggerManager
from triggerhooks.ext import (
    Lease,
    Plan,
    Transition,
    claim_of,
    expire_claim,
    open_reference,
    run_transition,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def manager(storage: StorageBackend, healthy_fleet: Fleet) -> TriggerManager:
    return TriggerManager(storage, task_runner="celery")


def finished(storage: StorageBackend, *names: str) -> bool:
    found = [storage.get(name) for name in names]
    return all(instance is not None and instance.status is TaskStatus.FINISHED
               for instance in found)


def test_a_fan_in_task_runs_exactly_once(manager: TriggerManager, redis_client: redis.Redis,
                                        storage: StorageBackend) -> None:
    manager.update_configuration({
        "fanIn": {"after": ["a", "b", "c"], "run": "celerytest.record"},
        "after": {"after": ["fanIn"], "run": "celerytest.record"},
    })
    # Any order, and from managers built independently, as on different app servers.
    TriggerManager(open_reference(storage.reference()), task_runner="celery").fire("c", {"z": 3})
    manager.fire("a", {"x": 1})
    manager.fire("b", {"y": 2})
    manager.fire("a", {"x": 10})  # again: a one-shot task does not run again

    wait_for(lambda: finished(storage, "fanIn#0", "after#0"), 30, "the fan-in and its cascade")
    assert [run["instance"] for run in runs(redis_client) if run["instance"] == "fanIn#0"] == ["fanIn#0"]
    assert len(storage.instances_of_task("fanIn")) == 1
    assert storage["fanIn#0"].kwargs == {"a": {"x": 1}, "b": {"y": 2}, "c": {"z": 3}}
    assert len(runs(redis_client, "after#0")) == 1


def test_an_and_every_task_runs_once_per_firing(manager: TriggerManager, redis_client: redis.Redis,
                                               storage: StorageBackend) -> None:
    manager.update_configuration({
        "perPage": {"after": ["started"], "andEvery": "page", "run": "celerytest.record"},
    })
    manager.fire("page", {"n": 0})  # waits for "started"
    manager.fire("started")
    for n in range(1, 5):
        manager.fire("page", {"n": n})

    names = [f"perPage#{n}" for n in range(5)]
    wait_for(lambda: finished(storage, *names), 30, "one instance per page")
    assert sorted(run["instance"] for run in runs(redis_client) if run["instance"] in names) == names
    assert [storage[name].kwargs["page"]["n"] for name in names] == list(range(5))


def test_a_fifty_task_cascade_chain_finishes_across_workers(
        manager: TriggerManager, storage: StorageBackend, fleet: Fleet) -> None:
    length = 50
    manager.update_configuration({
        f"c{n}": {"after": ["start" if n == 0 else f"c{n - 1}"], "run": "celerytest.record"}
        for n in range(length)
    })
    manager.fire("start")

    last = f"c{length - 1}#0"
    wait_for(lambda: finished(storage, last), 60, "the end of the chain")
    instances = [storage[f"c{n}#0"] for n in range(length)]
    assert all(instance.status is TaskStatus.FINISHED for instance in instances)
    workers = {claim_of(instance).worker for instance in instances}  # type: ignore[union-attr]
    assert workers == fleet.hostnames  # cascades scheduled by one worker ran on the other too
    assert instances[-1].metadata["result"] == {"from": last}


def test_a_retry_waits_at_least_its_cooldown(manager: TriggerManager, redis_client: redis.Redis,
                                            storage: StorageBackend) -> None:
    manager.update_configuration({"flaky": {"after": ["go"], "run": "celerytest.retry_once"}})
    manager.fire("go")

    wait_for(lambda: finished(storage, "flaky#1"), 30, "the retried copy to finish")
    first, copy = storage["flaky#0"], storage["flaky#1"]
    assert (first.status, copy.metadata["parent"], copy.metadata["retries"]) == (
        TaskStatus.REPLAYED, "flaky#0", 1)
    failed_at = datetime.fromisoformat(first.metadata["timestamps"]["failed"])
    restarted_at = datetime.fromisoformat(copy.metadata["timestamps"]["running"])
    assert (restarted_at - failed_at).total_seconds() >= RetryOnce.cooldown
    starts = [run["at"] for run in runs(redis_client) if run["instance"].startswith("flaky#")]
    assert len(starts) == 2 and starts[1] - starts[0] >= RetryOnce.cooldown


def test_a_background_receiver_runs_on_a_worker(manager: TriggerManager, redis_client: redis.Redis,
                                               storage: StorageBackend, fleet: Fleet) -> None:
    import celery_test_receivers

    manager.update_configuration({"news": {"after": ["go"], "run": "celerytest.announce"}})
    manager.fire("go", {"n": 7})

    raw = wait_for(lambda: redis_client.lpop(celery_test_receivers.RECEIVED), 30,
                   f"the background receiver's record\n{fleet.logs()}")
    received = orjson.loads(raw)
    assert received["pid"] != os.getpid()  # it ran in a worker process, not in fire()
    assert received == {**received, "sender": "celerytest.announce", "instance": "news#0",
                        "status": "finished", "result": {"announced": 7}, "stored": "finished"}


def test_a_copy_delivered_while_its_task_runs_elsewhere_changes_nothing(
        manager: TriggerManager, redis_client: redis.Redis, storage: StorageBackend,
        fleet: Fleet) -> None:
    manager.update_configuration({
        "long": {"after": ["go"], "run": "celerytest.block"},
        "next": {"after": ["long"], "run": "celerytest.record"},
    })
    manager.fire("go")
    owner = wait_for(lambda: runs(redis_client, "long#0"), 30, "the task to start")[0]["worker"]

    # The task outlives the broker's visibility timeout (3s): Redis delivers its message
    # again, and the other worker finds the instance running under a live lease.
    wait_for(lambda: f"long#0 is running on {owner}" in fleet.output(), 30,
             f"the copy to be delivered\n{fleet.logs()}")
    redis_client.rpush(RELEASE, b"go")

    wait_for(lambda: finished(storage, "long#0", "next#0"), 30, "the task and its cascade")
    assert [run["attempt"] for run in runs(redis_client, "long#0")] == [1]  # started once
    assert len(runs(redis_client, "next#0")) == 1
    assert claim_of(storage["long#0"]).worker == owner  # type: ignore[union-attr]


def test_a_killed_worker_s_instance_is_taken_over_and_finishes_exactly_once(
        manager: TriggerManager, redis_client: redis.Redis, storage: StorageBackend,
        fleet: Fleet) -> None:
    manager.update_configuration({
        "slow": {"after": ["go"], "run": "celerytest.block"},
        "then": {"after": ["slow"], "run": "celerytest.record"},
    })
    manager.fire("go")

    def claimed() -> str | None:
        instance = storage.get("slow#0")
        claim = claim_of(instance) if instance is not None else None
        return claim.worker if claim and runs(redis_client, "slow#0") else None

    victim = fleet.by_hostname(wait_for(claimed, 30, "a worker to start the slow task"))
    victim.kill()
    redis_client.rpush(RELEASE, b"go")  # only a live worker can take this

    wait_for(lambda: finished(storage, "slow#0", "then#0"), 40,
             f"the takeover after the kill\n{fleet.logs()}")
    slow = storage["slow#0"]
    claim = claim_of(slow)
    assert claim is not None and claim.attempt == 2 and claim.worker != victim.hostname
    assert [run["attempt"] for run in runs(redis_client, "slow#0")] == [1, 2]  # at least once
    assert len(runs(redis_client, "then#0")) == 1  # ... but finished (and cascaded) exactly once
    assert slow.metadata["result"] == {"released": True}
    assert PREFIX and redis_client.llen(RELEASE) == 0


def test_an_instance_that_lost_its_worker_as_often_as_allowed_fails_on_the_worker(
        manager: TriggerManager, redis_client: redis.Redis, storage: StorageBackend) -> None:
    manager.update_configuration({"doomed": {"after": ["go"], "run": "celerytest.record"}})

    def step(body: Callable[[Transition], object]) -> None:
        run_transition(storage, Plan(trigger="go", instances=("doomed#0",)), body)

    # Fired and claimed twice without the runner: two workers that died mid-task.
    step(lambda t: t.fire("go", b"{}"))
    def claim_by(worker: str) -> Callable[[Transition], object]:
        return lambda t: t.claim("doomed#0", Lease(30, worker))

    for worker in ("lost-1@elsewhere", "lost-2@elsewhere"):
        step(claim_by(worker))
        expire_claim(storage, "doomed#0")

    CeleryTaskRunner().schedule(manager, "doomed#0")  # the message comes back once more

    def failed() -> bool:
        return storage["doomed#0"].status is TaskStatus.FAILED
    wait_for(failed, 30, "a worker to fail the instance")
    doomed = storage["doomed#0"]
    assert doomed.metadata["exceptionType"] == "triggerhooks.exceptions.WorkerLostError"
    assert doomed.metadata["exceptionContext"] == {  # trigger_claim_max_attempts = 2
        "attempts": 2, "maxAttempts": 2, "workers": ["lost-1@elsewhere", "lost-2@elsewhere"]}
    assert runs(redis_client, "doomed#0") == []  # no worker started it a third time
