"""Trigger tasks of the soak (workers import this module: ``-I celery_soak_tasks``).

Every run of a task records its start (instance, attempt, claim token) in a
Redis list of the soak's own, on a server the soak never restarts; every end
of an instance (``task_completed``, ``task_failed``: sent once per stored
outcome) records itself in another. An instance may start more than once
(a worker killed mid-task: at-least-once execution) but must end once.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import orjson
import redis

from triggerhooks import TaskContext, TaskInstance, TriggerManager, TriggerTask, on
from triggerhooks.ext import claim_of, task_completed, task_failed

PREFIX = os.environ.get("SOAK_PREFIX", "th-soak:")
STARTS = f"{PREFIX}starts"
ENDS = f"{PREFIX}ends"

_client: tuple[int, redis.Redis] | None = None


def client() -> redis.Redis:
    """A client of the records' server, one per process (prefork children fork the parent's)."""
    global _client
    if _client is None or _client[0] != os.getpid():
        _client = (os.getpid(), redis.Redis.from_url(
            os.environ.get("SOAK_RECORDS_URL", "redis://127.0.0.1:6379/0")))
    return _client[1]


def _entry(uid: str, instance: TaskInstance, **extra: Any) -> bytes:
    claim = claim_of(instance)
    return orjson.dumps({"session": uid, "instance": instance.name,
                         "attempt": claim.attempt if claim else None,
                         "token": claim.token if claim else None,
                         "worker": claim.worker if claim else None, "pid": os.getpid(),
                         "at": time.time(), **extra})


def _work(context: TaskContext) -> None:
    client().rpush(STARTS, _entry(context.session_uid, context.task_instance))
    time.sleep(random.uniform(0.02, 0.12))  # long enough for a kill to land mid-task


class Step(TriggerTask):
    """A plain step: records its start, works a little, returns where it came from."""

    name = "soak.step"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        _work(context)
        return {"from": context.task_instance.name}


class Flaky(TriggerTask):
    """Retries once (0.5s cooldown) when its trigger ``b`` says ``flaky``; else a step."""

    name = "soak.flaky"
    cooldown = 0.5

    def _run(self, context: TaskContext) -> dict[str, Any]:
        _work(context)
        wants = (context.trigger_kwargs.get("b") or {}).get("flaky")
        if wants and not context.task_instance.metadata.get("retries"):
            raise self.retry(ValueError("flaky: once"), cooldown=self.cooldown)
        return {"from": context.task_instance.name}


def _ended(status: str, sender: Any, task_instance: TaskInstance,
           manager: TriggerManager) -> None:
    if sender in (Step, Flaky):
        client().rpush(ENDS, _entry(manager.storage.uid, task_instance, status=status))


@on(task_completed)
def completed(sender: Any, task_instance: TaskInstance, manager: TriggerManager,
              **kwargs: Any) -> None:
    _ended("finished", sender, task_instance, manager)


@on(task_failed)
def failed(sender: Any, task_instance: TaskInstance, manager: TriggerManager,
           **kwargs: Any) -> None:
    _ended("failed", sender, task_instance, manager)
