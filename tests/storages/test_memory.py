"""What is specific to the memory backend: sessions shared by uid within one process."""

from __future__ import annotations

from tests.helpers import run_threads
from triggerhooks import MemoryStorageBackend, TriggerManager
from triggerhooks.storages import open_reference, open_storage, storage_backends
from triggerhooks.storages.memory import MemoryStore


def test_storages_with_the_same_uid_share_one_session() -> None:
    store = MemoryStore()
    first = TriggerManager(MemoryStorageBackend("shared", store=store))
    first.update_configuration({"t": {"after": ["a", "b"], "run": "tests.echo"}})
    first.fire("a", {"from": "first"})
    second = TriggerManager(MemoryStorageBackend("shared", store=store))
    second.fire("b", {"from": "second"})
    assert first.storage["t#0"].kwargs == {"a": {"from": "first"}, "b": {"from": "second"}}
    assert MemoryStorageBackend("other", store=store).instances == {}
    assert len(store) == 2


def test_the_default_store_is_shared_by_the_whole_process() -> None:
    storage = MemoryStorageBackend("memory-default-store")
    try:
        TriggerManager(storage).fire("a", {"x": 1})
        again = storage_backends.get("memory", "memory-default-store")
        assert again.latest_kwargs == {"a": {"x": 1}}
        assert open_storage("memory://", "memory-default-store").latest_kwargs == {"a": {"x": 1}}
        assert open_reference(storage.reference()).latest_kwargs == {"a": {"x": 1}}
        assert storage.reference() == {"backend": "memory", "uid": "memory-default-store"}
    finally:
        storage.clear()
    assert MemoryStorageBackend("memory-default-store").latest_kwargs == {}


def test_separate_stores_are_separate() -> None:
    one, two = MemoryStore(), MemoryStore()
    TriggerManager(MemoryStorageBackend("same", store=one)).fire("a")
    assert MemoryStorageBackend("same", store=two).latest_kwargs == {}
    one.forget("same")
    assert MemoryStorageBackend("same", store=one).latest_kwargs == {}


def test_concurrent_fires_from_threads_lose_nothing() -> None:
    store = MemoryStore()
    manager = TriggerManager(MemoryStorageBackend("threads", store=store))
    manager.update_configuration({"t": {"andEvery": "p", "run": "tests.noop"}})

    def fire_many(worker: int) -> None:
        own = TriggerManager(MemoryStorageBackend("threads", store=store))
        for n in range(50):
            own.fire("p", {"worker": worker, "n": n})

    assert run_threads(fire_many, range(4)) == []
    instances = manager.storage.instances_of_task("t")
    assert len(instances) == 200
    assert {(i.kwargs["p"]["worker"], i.kwargs["p"]["n"]) for i in instances} == {
        (w, n) for w in range(4) for n in range(50)}
    assert all(i.status == "finished" for i in instances)


def test_stored_instances_are_copies() -> None:
    manager = TriggerManager(MemoryStorageBackend("copies", store=MemoryStore()))
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.echo"}})
    manager.fire("a", {"x": 1})
    instance = manager.storage["t#0"]
    instance.metadata["result"]["received"]["a"]["x"] = 99
    assert manager.storage["t#0"].metadata["result"] == {"received": {"a": {"x": 1}}}
