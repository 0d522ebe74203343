"""Recovery with real Celery workers: ``manager.recover()`` from this process hands a stuck
instance to the workers again, and one of them runs it to its end exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from celery_test_tasks import RELEASE
from celery_testing import HERE, PREFIX, Fleet, Worker, runs, wait_for
from triggerhooks_celery import create_app, get_app, install

from triggerhooks import StorageBackend, TaskStatus, TriggerManager
from triggerhooks.ext import claim_of

pytestmark = pytest.mark.slow

GRACE = 0.5


class QueueWorker(Worker):
    """A worker that consumes one queue of its own (no other worker takes its messages)."""

    def __init__(self, name: str, log_dir: Path, queue: str) -> None:
        super().__init__(name, log_dir)
        self.queue = queue

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "TRIGGERHOOKS_RECEIVER_MODULES": "celery_test_receivers",
               "PYTHONPATH": os.pathsep.join(
                   [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])}
        command = [sys.executable, "-m", "celery", "-A", "triggerhooks_celery", "worker",
                   "-P", "solo", "-c", "1", "-n", self.hostname, "-I", "celery_test_tasks",
                   "-Q", self.queue, "--without-gossip", "--without-mingle",
                   "--without-heartbeat", "--loglevel=INFO"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, cwd=HERE, env=env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture
def manager(storage: StorageBackend, healthy_fleet: Fleet) -> TriggerManager:
    return TriggerManager(storage, task_runner="celery", claim_grace_seconds=GRACE)


@pytest.fixture
def app_in_use() -> Iterator[Celery]:
    """Restores the app the runner sends to after a test installed another."""
    previous = get_app()
    yield previous
    install(previous)


@pytest.fixture
def queue(redis_client: redis.Redis) -> Iterator[str]:
    """A queue of the test's own, deleted afterwards."""
    name = f"private-{uuid.uuid4().hex[:8]}"
    yield name
    redis_client.delete(f"{PREFIX}{name}")


def settle_broker(client: redis.Redis, fleet: Fleet) -> None:
    """Restart the workers a test killed, and wait until every message was taken and
    acknowledged (the broker delivers a killed worker's message again after its visibility
    timeout), so that the next test starts with idle workers."""
    fleet.start()
    wait_for(lambda: not client.hlen(f"{PREFIX}unacked") and not client.llen(f"{PREFIX}celery"),
             30, f"the broker to have nothing in flight\n{fleet.logs()}")


def done(manager: TriggerManager) -> list[dict[str, object]]:
    """What ``manager.recover()`` did, as JSON (the plugin sees only the public API)."""
    return [entry.to_json() for entry in manager.recover()]


def finished(storage: StorageBackend, *names: str) -> bool:
    found = [storage.get(name) for name in names]
    return all(instance is not None and instance.status is TaskStatus.FINISHED
               for instance in found)


def test_a_worker_killed_mid_task_is_recovered_and_another_finishes_it_exactly_once(
        manager: TriggerManager, storage: StorageBackend, redis_client: redis.Redis,
        fleet: Fleet, app_in_use: Celery, queue: str, tmp_path: Path) -> None:
    """The victim consumes a queue no other worker listens to: once it is killed, its
    message goes back there and nobody runs it; only the recovery hands it to the fleet."""
    victim = QueueWorker("victim", tmp_path, queue)
    victim.start()
    try:
        victim.wait_ready()
        manager.update_configuration({
            "victimSlow": {"after": ["go"], "run": "celerytest.block"},
            "victimThen": {"after": ["victimSlow"], "run": "celerytest.record"},
        })
        install(create_app(task_default_queue=queue))  # this fire's message: to the victim
        manager.fire("go")
        install(app_in_use)
        wait_for(lambda: runs(redis_client, "victimSlow#0"), 30, f"the victim to start\n{victim.output()}")
        claim = claim_of(storage["victimSlow#0"])
        assert claim is not None and claim.worker == victim.hostname
    finally:
        victim.kill()
    redis_client.rpush(RELEASE, b"go")  # whoever runs it next may end it

    (found,) = wait_for(manager.stuck, 30, "the victim's lease to expire")
    assert (found.reason, found.worker, found.attempt) == ("lease expired", victim.hostname, 1)
    assert done(manager) == [{"action": "handed off", "instance": "victimSlow#0", "reason": "lease expired"}]

    wait_for(lambda: finished(storage, "victimSlow#0", "victimThen#0"), 30,
             f"the fleet to finish what the victim started\n{fleet.logs()}")
    slow = storage["victimSlow#0"]
    claim = claim_of(slow)
    assert claim is not None and claim.attempt == 2 and claim.worker in fleet.hostnames
    assert claim.lost == (victim.hostname,)
    assert [run["attempt"] for run in runs(redis_client, "victimSlow#0")] == [1, 2]
    assert len(runs(redis_client, "victimThen#0")) == 1  # ended, and cascaded, exactly once
    assert slow.metadata["result"] == {"released": True}
    assert done(manager) == []
    assert redis_client.llen(f"{PREFIX}{queue}") <= 1  # its first message, never run again


def test_a_message_the_broker_lost_is_recovered_after_the_grace_time_and_runs_once(
        manager: TriggerManager, storage: StorageBackend, redis_client: redis.Redis,
        app_in_use: Celery, queue: str, fleet: Fleet) -> None:
    manager.update_configuration({"lost": {"after": ["go"], "run": "celerytest.record"},
                                  "lostThen": {"after": ["lost"], "run": "celerytest.record"}})
    install(create_app(task_default_queue=queue))  # no worker listens: the message is lost
    manager.fire("go")
    install(app_in_use)
    assert storage["lost#0"].status is TaskStatus.SCHEDULED

    (found,) = wait_for(manager.stuck, 10, "the grace time")
    assert (found.instance, found.reason) == ("lost#0", "unclaimed")
    assert done(manager) == [{"action": "handed off", "instance": "lost#0", "reason": "unclaimed"}]

    wait_for(lambda: finished(storage, "lost#0", "lostThen#0"), 30, f"the fleet to run it\n{fleet.logs()}")
    assert len(runs(redis_client, "lost#0")) == 1 and len(runs(redis_client, "lostThen#0")) == 1
    assert done(manager) == [] and manager.stuck() == []


def test_a_recovery_racing_the_broker_s_redelivery_runs_nothing_twice(
        manager: TriggerManager, storage: StorageBackend, redis_client: redis.Redis,
        fleet: Fleet) -> None:
    """A fleet worker is killed: the broker delivers its message again (after its visibility
    timeout) while the recovery sends one of its own; both reach live workers."""
    manager.update_configuration({"raced": {"after": ["go"], "run": "celerytest.block"},
                                  "racedThen": {"after": ["raced"], "run": "celerytest.record"}})
    manager.fire("go")

    def claimed() -> str | None:
        instance = storage.get("raced#0")
        claim = claim_of(instance) if instance is not None else None
        return claim.worker if claim and runs(redis_client, "raced#0") else None

    victim = fleet.by_hostname(wait_for(claimed, 30, "a worker to start the slow task"))
    victim.kill()
    redis_client.rpush(RELEASE, b"go")
    wait_for(manager.stuck, 30, "the victim's lease to expire")
    assert done(manager) in ([{"action": "handed off", "instance": "raced#0", "reason": "lease expired"}], [])

    wait_for(lambda: finished(storage, "raced#0", "racedThen#0"), 40, f"the takeover\n{fleet.logs()}")
    assert [run["attempt"] for run in runs(redis_client, "raced#0")] == [1, 2]
    assert len(runs(redis_client, "racedThen#0")) == 1
    assert claim_of(storage["raced#0"]).worker != victim.hostname  # type: ignore[union-attr]
    settle_broker(redis_client, fleet)
    assert [run["attempt"] for run in runs(redis_client, "raced#0")] == [1, 2]  # the copy too
