"""Trigger tasks of the Celery tests; workers import this module (``-I celery_test_tasks``).

Each task records its start in a Redis list, so the test process can count
runs across processes.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import orjson
import redis

from triggerhooks import TaskContext, TriggerTask
from triggerhooks.ext import claim_of

PREFIX = os.environ["TH_CELERY_TEST_PREFIX"]
RUNS = f"{PREFIX}runs"
RELEASE = f"{PREFIX}release"

_client: redis.Redis | None = None


def client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ.get("TH_CELERY_TEST_REDIS",
                                                      "redis://127.0.0.1:6379/0"))
    return _client


def record(context: TaskContext, **extra: Any) -> None:
    claim = claim_of(context.task_instance)
    client().rpush(RUNS, orjson.dumps({
        "instance": context.task_instance.name, "pid": os.getpid(), "host": socket.gethostname(),
        "worker": claim.worker if claim else None, "attempt": claim.attempt if claim else None,
        "at": time.time(), **extra}))


class Record(TriggerTask):
    """Records the run and returns its trigger kwargs."""

    name = "celerytest.record"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        record(context)
        return {"from": context.task_instance.name}


class RetryOnce(TriggerTask):
    """Fails its first run with a retry after a cooldown, then succeeds."""

    name = "celerytest.retry_once"
    cooldown = 1.5

    def _run(self, context: TaskContext) -> dict[str, Any]:
        record(context)
        if not context.task_instance.metadata.get("retries"):
            raise self.retry(ValueError("not yet"), cooldown=self.cooldown)
        return {"retried": True}


class Block(TriggerTask):
    """Blocks until the test pushes to the release list (or 60s pass)."""

    name = "celerytest.block"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        record(context)
        if client().blpop([RELEASE], timeout=60) is None:
            raise TimeoutError("never released")
        return {"released": True}


class Announce(TriggerTask):
    """Does nothing; a background receiver listens for its completion."""

    name = "celerytest.announce"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        return {"announced": context.trigger_kwargs.get("go", {}).get("n")}
