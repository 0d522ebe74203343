"""A session outlives the process that wrote it: another process with a new storage sees it."""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest

from triggerhooks import TriggerManager
from triggerhooks.serialization import JsonDict
from triggerhooks.storages import StorageBackend, open_reference

pytestmark = [pytest.mark.slow,
              pytest.mark.parametrize("backend", ["sqlite", "redis"], indirect=True)]


def _continue_session(reference: JsonDict, queue: Any) -> None:
    import tests.tasks  # noqa: F401 - registers the tasks in this process

    storage = open_reference(reference)
    queue.put({"tasks": list(storage.tasks), "kwargs": storage.latest_kwargs,
               "instances": {name: i.status.value for name, i in storage.instances.items()}})
    manager = TriggerManager(storage)
    manager.fire("b", {"from": "child"})
    manager.fire("page", {"n": 2})


def test_another_process_sees_and_continues_the_session(storage: StorageBackend) -> None:
    manager = TriggerManager(storage)
    manager.update_configuration({
        "t": {"after": ["a", "b"], "run": "tests.echo"},
        "pages": {"after": ["a"], "andEvery": "page", "run": "tests.echo"},
    })
    manager.fire("a", {"from": "parent"})
    manager.fire("page", {"n": 1})

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_continue_session, args=(storage.reference(), queue))
    child.start()
    seen = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0

    assert seen == {"tasks": ["t", "pages"],
                    "kwargs": {"a": {"from": "parent"}, "page": {"n": 1},
                               "pages": {"received": {"a": {"from": "parent"}, "page": {"n": 1}}}},
                    "instances": {"t#0": "unstarted", "pages#0": "finished"}}
    assert storage["t#0"].kwargs == {"a": {"from": "parent"}, "b": {"from": "child"}}
    assert storage["t#0"].status == "finished"
    assert [i.kwargs["page"] for i in storage.instances_of_task("pages")] == [{"n": 1}, {"n": 2}]
    assert storage.is_finalized
    manager.fire("page", {"n": 3})  # this process goes on where the other left off
    assert len(storage.instances_of_task("pages")) == 3
