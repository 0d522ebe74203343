"""The example plugin, installed for real: found through its entry point and usable by key."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from triggerhooks_example import Greet, NamespacedMemoryStorage, QueuedTriggerManager, QueueTaskRunner
from triggerhooks_example.events import greeted
from triggerhooks_example.receivers import recent_greetings

from triggerhooks import (
    capture_signals,
    open_storage,
    storage_backends,
    task_runners,
    trigger_managers,
    trigger_tasks,
)
from triggerhooks.ext import list_plugins, open_reference

CONFIG = {"greet": {"after": ["guestArrived"], "run": "triggerhooks_example.greet"}}


@pytest.fixture
def storage() -> Iterator[NamespacedMemoryStorage]:
    created = storage_backends.get("example-namespaced", uuid.uuid4().hex, namespace="tests")
    assert isinstance(created, NamespacedMemoryStorage)
    yield created
    created.clear()


def test_the_entry_point_registers_everything() -> None:
    plugins, failed = list_plugins()
    assert failed == {}
    example = next(info for info in plugins if info.name == "example")
    assert example.distribution == "triggerhooks-example"
    assert example.entry_point == "example = triggerhooks_example.plugin"
    assert example.registered == {
        "trigger manager": ["example-queued"],
        "storage backend": ["example-namespaced"],
        "task runner": ["example-queue"],
        "trigger task": ["triggerhooks_example.greet"],
    }
    assert example.receiver_modules == ["triggerhooks_example.receivers"]
    assert trigger_managers.source_of("example-queued") == "example"
    assert task_runners.get_class("example-queue") is QueueTaskRunner
    assert trigger_tasks.get_class("triggerhooks_example.greet") is Greet


def test_tasks_wait_in_the_queue_until_run_pending(storage: NamespacedMemoryStorage) -> None:
    manager = trigger_managers.get("example-queued", storage)
    assert isinstance(manager, QueuedTriggerManager)
    manager.update_configuration(CONFIG)
    manager.fire("guestArrived", {"name": "Ada"})
    assert storage["greet#0"].status == "scheduled"
    assert QueueTaskRunner.pending() == ["greet#0"]

    with capture_signals(greeted, sender=Greet) as sent:
        assert QueueTaskRunner.run_pending() == 1
    assert [each["greeting"] for each in sent] == ["Hello, Ada!"]  # the plugin's own event
    assert storage["greet#0"].status == "finished"
    assert storage["greet#0"].metadata["result"] == {"greeting": "Hello, Ada!"}
    assert recent_greetings[-1] == "Hello, Ada!"  # the plugin's receiver ran
    assert QueueTaskRunner.run_pending() == 0


def test_cascades_queue_too(storage: NamespacedMemoryStorage) -> None:
    manager = trigger_managers.get("example-queued", storage)
    manager.update_configuration({
        **CONFIG,
        "greetAgain": {"after": ["greet", "guestLeft"], "run": "triggerhooks_example.greet"},
    })
    manager.fire("guestLeft", {"name": "Grace"})
    manager.fire("guestArrived", {"name": "Ada"})
    assert QueueTaskRunner.run_pending() == 2
    assert storage["greetAgain#0"].metadata["result"] == {"greeting": "Hello, Grace!"}


def test_a_failing_greeting_fails_its_instance(storage: NamespacedMemoryStorage) -> None:
    manager = trigger_managers.get("default", storage)  # the built-in manager, inline runner
    manager.update_configuration(CONFIG)
    manager.fire("guestArrived", {"nobody": True})
    assert storage["greet#0"].status == "failed"
    assert storage["greet#0"].metadata["exceptionType"] == "ValueError"


def test_namespaces_keep_sessions_apart() -> None:
    uid = uuid.uuid4().hex
    first = storage_backends.get("example-namespaced", uid, namespace="a")
    second = storage_backends.get("example-namespaced", uid, namespace="b")
    try:
        trigger_managers.get("default", first).update_configuration(CONFIG)
        assert set(first.tasks) == {"greet"}
        assert second.tasks == {}
        assert first.uid == f"a/{uid}"
    finally:
        first.clear()


def test_url_and_reference_reach_the_same_session(storage: NamespacedMemoryStorage) -> None:
    trigger_managers.get("default", storage).update_configuration(CONFIG)
    by_url = open_storage("example-ns://tests", storage.local_uid)
    by_reference = open_reference(storage.reference())
    assert isinstance(by_url, NamespacedMemoryStorage)
    assert by_url.uid == by_reference.uid == storage.uid
    assert set(by_url.tasks) == set(by_reference.tasks) == {"greet"}


def test_a_namespace_cannot_contain_a_slash() -> None:
    with pytest.raises(ValueError, match="namespace"):
        NamespacedMemoryStorage("x", namespace="a/b")
