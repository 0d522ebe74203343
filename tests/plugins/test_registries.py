"""The class registries: managers, storages, runners and tasks by key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from class_registry import RegistryKeyError

from triggerhooks import (
    InlineTaskRunner,
    MemoryStorageBackend,
    RedisStorageBackend,
    SqliteStorageBackend,
    ThreadingTaskRunner,
    TriggerhooksError,
    TriggerManager,
    UnknownKeyError,
)
from triggerhooks.manager import trigger_managers
from triggerhooks.runners import task_runners
from triggerhooks.storages import StorageBackend, storage_backends
from triggerhooks.task import TriggerTask, trigger_tasks
from triggerhooks.testing import registered_class


class AuditingManager(TriggerManager):
    """A manager subclass, as an application would register one."""


@pytest.fixture
def auditing() -> Iterator[None]:
    with registered_class(trigger_managers, "auditing", AuditingManager):
        yield


def test_built_in_keys() -> None:
    assert {"default"} <= set(trigger_managers.keys())
    assert {"memory", "sqlite", "redis"} <= set(storage_backends.keys())
    assert {"inline", "threading"} <= set(task_runners.keys())
    assert trigger_managers.get_class("default") is TriggerManager
    assert storage_backends.get_class("memory") is MemoryStorageBackend
    assert storage_backends.get_class("sqlite") is SqliteStorageBackend
    assert storage_backends.get_class("redis") is RedisStorageBackend
    assert task_runners.get_class("inline") is InlineTaskRunner
    assert task_runners.get_class("threading") is ThreadingTaskRunner


def test_get_builds_an_instance_from_the_remaining_arguments() -> None:
    storage = storage_backends.get("memory", "registries-test")
    assert isinstance(storage, MemoryStorageBackend) and storage.uid == "registries-test"
    manager = trigger_managers.get("default", storage)
    assert type(manager) is TriggerManager and manager.storage is storage
    storage.clear()
    assert isinstance(task_runners.get("threading"), ThreadingTaskRunner)
    task = trigger_tasks.get("tests.echo")
    assert isinstance(task, TriggerTask) and type(task).name == "tests.echo"


def test_a_registered_manager_subclass(auditing: None, storage: StorageBackend) -> None:
    assert "auditing" in trigger_managers
    manager = trigger_managers.get("auditing", storage)
    assert type(manager) is AuditingManager
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.echo"}})
    manager.fire("a")
    assert manager.storage["t#0"].status == "finished"


@pytest.mark.parametrize(("registry", "kind", "some_known"), [
    (trigger_managers, "trigger manager", "'default'"),
    (storage_backends, "storage backend", "'memory'"),
    (task_runners, "task runner", "'inline', 'threading'"),
    (trigger_tasks, "trigger task", "'tests.echo'"),
])
def test_an_unknown_key_lists_the_known_ones(registry: Any, kind: str, some_known: str) -> None:
    with pytest.raises(UnknownKeyError) as caught:
        registry.get("nope", "uid")
    error = caught.value
    assert str(error).startswith(f"unknown {kind} 'nope'; known: ")
    assert some_known in str(error)
    assert isinstance(error, TriggerhooksError)
    assert isinstance(error, RegistryKeyError) and isinstance(error, KeyError)
    assert error.key == "nope" and "nope" not in error.known
    with pytest.raises(UnknownKeyError):
        registry.get_class("nope")


def test_task_names_are_the_registry_keys() -> None:
    assert "tests.echo" in trigger_tasks
    assert "tests.Echo" not in trigger_tasks
