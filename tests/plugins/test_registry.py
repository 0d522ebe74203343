"""The class registries: keys, sources, duplicates, unknown keys, journaled registrations."""

from __future__ import annotations

import pytest
from class_registry import RegistryKeyError

from triggerhooks import DuplicateKeyError, StorageBackend, TriggerTask, UnknownKeyError, trigger_task
from triggerhooks.registries import Registry, recording, undo
from triggerhooks.storages import MemoryStorageBackend, storage_backends
from triggerhooks.task import TaskContext


class Alpha(MemoryStorageBackend):
    name = "alpha"


class Beta(MemoryStorageBackend):
    name = "beta"


class OtherAlpha(MemoryStorageBackend):
    name = "alpha"


@pytest.fixture
def registry() -> Registry[StorageBackend]:
    return Registry("widget", attr_name="name")


def test_register_by_attribute_or_explicit_key(registry: Registry[StorageBackend]) -> None:
    registry.register(Alpha)
    registry.register("b")(Beta)
    assert registry.get_class("alpha") is Alpha
    assert registry.get_class("b") is Beta
    assert list(registry.keys()) == ["alpha", "b"]
    assert "b" in registry and "beta" not in registry
    instance = registry.get("alpha", "uid-1")
    assert isinstance(instance, Alpha) and instance.uid == "uid-1"


def test_an_unknown_key_lists_the_known_ones(registry: Registry[StorageBackend]) -> None:
    registry.register(Beta)
    registry.register(Alpha)
    with pytest.raises(UnknownKeyError) as caught:
        registry.get_class("gamma")
    assert str(caught.value) == "unknown widget 'gamma'; known: 'alpha', 'beta'"
    assert isinstance(caught.value, RegistryKeyError)  # class-registry's own error still catches it
    assert isinstance(caught.value, KeyError)
    assert caught.value.known == ["alpha", "beta"]
    with pytest.raises(UnknownKeyError, match="known: none"):
        Registry[StorageBackend]("empty").get_class("x")


def test_the_global_registries_list_their_keys_when_a_lookup_misses() -> None:
    with pytest.raises(UnknownKeyError, match=r"unknown storage backend 'dynamo'; known: .*'memory'"):
        storage_backends.get("dynamo", "uid")


def test_a_second_class_under_one_key_is_refused_naming_both(registry: Registry[StorageBackend]) -> None:
    registry.register(Alpha)
    with pytest.raises(DuplicateKeyError) as caught:
        registry.register(OtherAlpha)
    assert str(caught.value) == (
        f"widget 'alpha' is registered twice: by {__name__}.Alpha and by {__name__}.OtherAlpha; "
        "remove one of them or register one under another key")
    assert registry.get_class("alpha") is Alpha


def test_registering_the_same_class_again_is_harmless(registry: Registry[StorageBackend]) -> None:
    registry.register(Alpha)
    registry.register(Alpha)
    registry.register("again")(Alpha)
    assert list(registry.keys()) == ["alpha", "again"]


def test_a_class_redefined_by_the_same_code_replaces_the_old_one(
        registry: Registry[StorageBackend]) -> None:
    def define() -> type[MemoryStorageBackend]:
        class Reloaded(MemoryStorageBackend):
            name = "reloaded"
        return Reloaded

    first, second = define(), define()  # like importlib.reload() of a module
    registry.register(first)
    registry.register(second)
    assert registry.get_class("reloaded") is second


def test_bad_keys_and_values_are_refused(registry: Registry[StorageBackend]) -> None:
    with pytest.raises(ValueError, match="empty key"):
        registry.register("")(Alpha)
    with pytest.raises(TypeError, match="must be a class"):
        registry.register("x")(object())  # type: ignore[type-var]

    def plain(context: TaskContext) -> dict[str, int]:
        return {}

    with pytest.raises(TypeError, match="cannot register function 'test_bad_keys_and_values_are_"
                                        r"refused.<locals>.plain' in the widget registry"):
        registry.register(plain)
    assert list(registry.keys()) == []


def test_a_trigger_task_function_stands_for_its_class() -> None:
    tasks: Registry[TriggerTask] = Registry("task", attr_name="name")

    @trigger_task(name="tests.registry.fn")
    def fn(context: TaskContext) -> dict[str, int]:
        return {}

    assert tasks.register(fn) is fn
    assert tasks.get_class("tests.registry.fn") is fn.__trigger_task__  # type: ignore[attr-defined]


def test_sources_name_who_registered_each_key(registry: Registry[StorageBackend]) -> None:
    registry.register(Alpha)
    with recording("some-plugin"):
        registry.register(Beta)
    assert registry.sources() == {"alpha": f"{__name__}.Alpha", "beta": "some-plugin"}
    assert registry.source_of("beta") == "some-plugin"
    with pytest.raises(UnknownKeyError):
        registry.source_of("gamma")


def test_recording_journals_and_undo_restores(registry: Registry[StorageBackend]) -> None:
    registry.register(Alpha)  # registered on its own first, as a TriggerTask subclass would be
    with recording("plugin") as journal:
        registry.register(Alpha)  # the plugin claims it
        registry.register(Beta)
    assert [change.key for change in journal] == ["alpha", "beta"]
    assert registry.sources() == {"alpha": "plugin", "beta": "plugin"}

    undo(journal)
    assert list(registry.keys()) == ["alpha"]
    assert registry.sources() == {"alpha": f"{__name__}.Alpha"}


def test_recording_undoes_everything_when_the_block_raises(registry: Registry[StorageBackend]) -> None:
    with pytest.raises(RuntimeError), recording("plugin"):
        registry.register(Beta)
        raise RuntimeError("hook failed")
    assert list(registry.keys()) == []


def test_undo_leaves_a_key_that_changed_since_alone(registry: Registry[StorageBackend]) -> None:
    with recording("plugin") as journal:
        registry.register(Alpha)
    registry.unregister("alpha")
    registry.register(OtherAlpha)
    undo(journal)
    assert registry.get_class("alpha") is OtherAlpha
