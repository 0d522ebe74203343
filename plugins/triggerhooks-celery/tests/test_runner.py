"""The celery runner without workers: registration, the message it sends, what it refuses."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator

import orjson
import pytest
import redis
import triggerhooks_celery
from celery import Celery
from celery.app.utils import find_app
from celery_testing import PREFIX
from triggerhooks_celery import (
    BrokerUnavailableError,
    CeleryTaskRunner,
    EagerModeError,
    create_app,
    get_app,
    install,
)

from triggerhooks import (
    MemoryStorageBackend,
    RedisStorageBackend,
    SessionReferenceError,
    StorageBackend,
    TaskStatus,
    TriggerManager,
    task_runners,
)
from triggerhooks.ext import list_plugins, session_reference, wait_for


@pytest.fixture
def app_in_use() -> Iterator[Celery]:
    """Restores the app the runner sends to after a test installed another."""
    previous = get_app()
    yield previous
    install(previous)


def test_the_entry_point_registers_the_celery_runner() -> None:
    plugins, failed = list_plugins()
    assert failed == {}
    celery = next(info for info in plugins if info.name == "celery")
    assert celery.distribution == "triggerhooks-celery"
    assert celery.registered == {"task runner": ["celery"]}
    assert task_runners.get_class("celery") is CeleryTaskRunner


def test_celery_dash_a_finds_the_default_app_with_json_only(app_in_use: Celery) -> None:
    app = find_app("triggerhooks_celery")
    assert app is triggerhooks_celery.app is get_app()
    assert app.conf.accept_content == ["json"] and app.conf.task_serializer == "json"
    assert {"triggerhooks.execute", "triggerhooks.receive"} <= set(app.tasks)
    execute = app.tasks["triggerhooks.execute"]
    assert execute.acks_late and execute.reject_on_worker_lost and execute.serializer == "json"


def test_the_message_is_one_json_reference_with_the_countdown_as_eta(
        storage: StorageBackend, app_in_use: Celery, redis_client: redis.Redis) -> None:
    queue = f"unconsumed-{uuid.uuid4().hex[:8]}"  # no worker listens: the message stays put
    install(create_app(task_default_queue=queue))
    manager = TriggerManager(storage, task_runner="celery")
    manager.update_configuration({"t": {"after": ["go"], "run": "celerytest.record"}})
    before = time.time()

    manager.fire("go")
    CeleryTaskRunner().schedule(manager, "t#0", countdown=30)

    raw = redis_client.lrange(f"{PREFIX}{queue}", 0, -1)
    assert len(raw) == 2
    envelopes = sorted((orjson.loads(message) for message in raw),
                       key=lambda e: e["headers"]["eta"] or "")
    for envelope in envelopes:
        assert envelope["content-type"] == "application/json"
        assert envelope["headers"]["task"] == "triggerhooks.execute"
        args, kwargs, _ = orjson.loads(base64.b64decode(envelope["body"]))
        assert args == [{"session": session_reference(manager), "instance": "t#0"}] and kwargs == {}
    assert envelopes[0]["headers"]["eta"] is None
    eta = envelopes[1]["headers"]["eta"]
    from datetime import datetime

    assert datetime.fromisoformat(eta).timestamp() == pytest.approx(before + 30, abs=5)
    assert storage["t#0"].status is TaskStatus.SCHEDULED  # nothing ran it
    redis_client.delete(f"{PREFIX}{queue}")


def test_the_message_carries_no_password_of_the_storage(app_in_use: Celery,
                                                       redis_client: redis.Redis) -> None:
    """Whoever reads the broker reads no password: the reference leaves it out (and says so);
    workers complete it from their own settings (TRIGGERHOOKS_REDIS_URL)."""
    queue = f"unconsumed-{uuid.uuid4().hex[:8]}"
    install(create_app(task_default_queue=queue))
    for url in ("redis://:s3cret-pw@127.0.0.1:6379/0", "redis://127.0.0.1:6379/0?password=s3cret-pw",
                "unix://:s3cret-pw@/run/redis.sock?db=0"):
        storage = RedisStorageBackend(f"celery-{uuid.uuid4().hex}", url, prefix=f"{PREFIX}pw")
        CeleryTaskRunner().schedule(TriggerManager(storage, task_runner="celery"), "t#0")
    raw = redis_client.lrange(f"{PREFIX}{queue}", 0, -1)
    assert len(raw) == 3 and not any(b"s3cret" in message for message in raw)
    for message in raw:
        [payload], _, _ = orjson.loads(base64.b64decode(orjson.loads(message)["body"]))
        assert payload["session"]["storage"]["secretWithheld"] is True
    redis_client.delete(f"{PREFIX}{queue}")


def test_eager_mode_is_refused_the_task_would_run_inside_fire(
        storage: StorageBackend, app_in_use: Celery) -> None:
    install(create_app(task_always_eager=True))
    manager = TriggerManager(storage, task_runner="celery")
    manager.update_configuration({"t": {"after": ["go"], "run": "celerytest.record"}})
    with pytest.raises(EagerModeError, match="task_always_eager"):
        manager.fire("go")
    assert storage["t#0"].status is TaskStatus.SCHEDULED


def test_a_memory_session_is_refused_workers_could_not_reach_it(app_in_use: Celery) -> None:
    manager = TriggerManager(MemoryStorageBackend(f"celery-{uuid.uuid4().hex}"), task_runner="celery")
    manager.update_configuration({"t": {"after": ["go"], "run": "celerytest.record"}})
    with pytest.raises(SessionReferenceError, match="memory"):
        manager.fire("go")


def test_a_broker_that_is_down_is_reported_as_ours_after_the_commit(
        storage: StorageBackend, app_in_use: Celery) -> None:
    install(create_app(broker_url="redis://127.0.0.1:1/0", task_publish_retry=False,
                       broker_connection_retry=False, broker_connection_max_retries=0))
    manager = TriggerManager(storage, task_runner="celery", claim_grace_seconds=0.001)
    manager.update_configuration({"t": {"after": ["go"], "run": "celerytest.record"}})
    with pytest.raises(BrokerUnavailableError, match="stays scheduled") as caught:
        manager.fire("go")
    assert caught.value.committed is True and caught.value.scheduled == ("t#0",)
    assert storage["t#0"].status is TaskStatus.SCHEDULED
    assert storage.latest_kwargs == {"go": {}}  # stored once: a retry is not the repair
    wait_for(manager.stuck, 10, "the instance to count as stuck", interval=0.001)
    with pytest.raises(BrokerUnavailableError):  # still down: the recovery says so too
        manager.recover()
    assert storage["t#0"].metadata["recovered"]["count"] == 1
