"""``fire_on_commit``: fires when the transaction commits, never when it (or the savepoint
it was called in) rolls back. The tests commit for real (``transactional_db``)."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from django.db import transaction
from testapp.models import Order
from triggerhooks_django import fire_on_commit, get_manager

from triggerhooks import (
    InvalidTriggerError,
    StorageUnavailableError,
    TriggerManager,
    UnstorableKwargsError,
)

pytestmark = pytest.mark.usefixtures("transactional_db")


@pytest.fixture
def orders(manager: TriggerManager) -> TriggerManager:
    """A session whose task ``t_ship`` runs once per ``orderPlaced``."""
    manager.update_configuration({
        "t_ship": {"after": [], "andEvery": "orderPlaced", "run": "testapp.echo"},
    })
    return manager


def fired(manager: TriggerManager) -> list[Any]:
    """The kwargs each ``t_ship`` instance ran with, in order."""
    storage = get_manager(manager.storage.uid).storage
    return [i.kwargs["orderPlaced"] for i in storage.instances_of_task("t_ship")]


class Boom(Exception):
    pass


def test_fires_when_the_transaction_commits(orders: TriggerManager, uid: str) -> None:
    with transaction.atomic():
        Order.objects.create(number="A-1")
        fire_on_commit(uid, "orderPlaced", {"number": "A-1"})
        assert fired(orders) == []  # not yet: the order is not committed
    assert fired(orders) == [{"number": "A-1"}]
    assert get_manager(uid).storage["t_ship#0"].status == "finished"


def test_never_fires_when_it_rolls_back(orders: TriggerManager, uid: str) -> None:
    with pytest.raises(Boom), transaction.atomic():
        Order.objects.create(number="A-2")
        fire_on_commit(uid, "orderPlaced", {"number": "A-2"})
        raise Boom
    assert not Order.objects.filter(number="A-2").exists()
    assert fired(orders) == []
    assert "orderPlaced" not in get_manager(uid).storage.latest_kwargs


def test_a_savepoint_rolled_back_takes_its_fire_with_it(orders: TriggerManager, uid: str) -> None:
    with transaction.atomic():
        Order.objects.create(number="A-3")
        fire_on_commit(uid, "orderPlaced", {"number": "A-3"})
        try:
            with transaction.atomic():  # a savepoint
                Order.objects.create(number="A-4")
                fire_on_commit(uid, "orderPlaced", {"number": "A-4"})
                raise Boom
        except Boom:
            pass
        with transaction.atomic():
            Order.objects.create(number="A-5")
            fire_on_commit(uid, "orderPlaced", {"number": "A-5"})
    assert sorted(Order.objects.values_list("number", flat=True)) == ["A-3", "A-5"]
    assert fired(orders) == [{"number": "A-3"}, {"number": "A-5"}]


def test_an_inner_block_that_committed_still_waits_for_the_outer_one(
        orders: TriggerManager, uid: str) -> None:
    with pytest.raises(Boom), transaction.atomic():
        with transaction.atomic():
            Order.objects.create(number="A-6")
            fire_on_commit(uid, "orderPlaced", {"number": "A-6"})
        assert fired(orders) == []
        raise Boom
    assert fired(orders) == []


def test_without_a_transaction_it_fires_at_once(orders: TriggerManager, uid: str) -> None:
    fire_on_commit(uid, "orderPlaced", {"number": "A-7"})
    assert fired(orders) == [{"number": "A-7"}]


def test_a_key_fires_once_however_often_the_request_is_retried(orders: TriggerManager,
                                                               uid: str) -> None:
    for _ in range(3):
        with transaction.atomic():
            fire_on_commit(uid, "orderPlaced", {"number": "A-8"}, key="order-A-8-placed")
    assert fired(orders) == [{"number": "A-8"}]


def test_kwargs_are_checked_and_copied_when_called(orders: TriggerManager, uid: str) -> None:
    kwargs: dict[str, Any] = {"number": "A-9", "lines": [1]}
    with transaction.atomic():
        fire_on_commit(uid, "orderPlaced", kwargs)
        kwargs["lines"].append(2)  # too late: what was given is what fires
        with pytest.raises(UnstorableKwargsError, match="cannot be stored as JSON"):
            fire_on_commit(uid, "orderPlaced", {"when": time})
        with pytest.raises(UnstorableKwargsError, match="Out of range float values"):
            fire_on_commit(uid, "orderPlaced", {"score": float("nan")})
        with pytest.raises(UnstorableKwargsError, match="must be a mapping, not list"):
            fire_on_commit(uid, "orderPlaced", [1, 2])  # type: ignore[arg-type]
        with pytest.raises(InvalidTriggerError):
            fire_on_commit(uid, "")
        with pytest.raises(InvalidTriggerError):
            fire_on_commit(uid, "orderPlaced", key="")
    assert fired(orders) == [{"number": "A-9", "lines": [1]}]


def test_a_bad_setting_fails_in_the_request(settings: Any, uid: str) -> None:
    settings.TRIGGERHOOKS = {"task_runner": "nope", "storage": settings.STORAGE_URL}
    with pytest.raises(Exception, match="nope"), transaction.atomic():
        fire_on_commit(uid, "orderPlaced")


def test_a_storage_that_is_down_raises_after_the_commit(settings: Any, uid: str) -> None:
    settings.TRIGGERHOOKS = {"storage": "redis://:s3cret@127.0.0.1:1/0?socket_connect_timeout=1"}
    with pytest.raises(StorageUnavailableError) as caught, transaction.atomic():
        Order.objects.create(number="B-1")
        fire_on_commit(uid, "orderPlaced")
    assert Order.objects.filter(number="B-1").exists()  # committed: only the fire failed
    assert "s3cret" not in str(caught.value)


def test_robust_logs_a_failed_fire_instead(settings: Any, uid: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    settings.TRIGGERHOOKS = {"storage": "redis://127.0.0.1:1/0?socket_connect_timeout=1"}
    with caplog.at_level(logging.ERROR), transaction.atomic():
        Order.objects.create(number="B-2")
        fire_on_commit(uid, "orderPlaced", robust=True)
    assert Order.objects.filter(number="B-2").exists()
    assert any("StorageUnavailableError" in (r.exc_text or r.getMessage()) or
               (r.exc_info and r.exc_info[0] is StorageUnavailableError) for r in caplog.records)
