"""Many processes firing into one session at once: nothing lost, nothing run twice.

Real processes (multiprocessing, spawn) on the durable backends (SQLite, Redis, PostgreSQL); each task run
appends its instance name to a file, so runs are counted across processes.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from triggerhooks import TriggerManager
from triggerhooks.serialization import JsonDict
from triggerhooks.signals import session_finalized
from triggerhooks.storages import StorageBackend, open_reference
from triggerhooks.testing.signals import connected

pytestmark = [pytest.mark.slow,
              pytest.mark.parametrize("backend", ["sqlite", "redis", "postgresql"], indirect=True)]

PROCESSES = 8
TRIGGERS = 100
TICKS = 50
FAN_IN = [f"e{p}_{k}" for k in range(TRIGGERS) for p in range(PROCESSES)]
"""Every trigger the processes fire: the fan-in task waits for all 800 of them."""


def _spawn(target: Any, *args: Any, count: int) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(count)
    processes = [ctx.Process(target=target, args=(number, barrier, *args)) for number in range(count)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * count


def _fire_many(number: int, barrier: Any, reference: JsonDict) -> None:
    import tests.tasks  # noqa: F401 - registers the tasks in this process

    manager = TriggerManager(open_reference(reference))
    barrier.wait(timeout=60)
    for k in range(TRIGGERS):
        manager.fire(f"e{number}_{k}", {"p": number, "k": k})
        if k < TICKS:
            manager.fire("tick", {"p": number, "k": k})


def test_processes_firing_into_one_session(storage: StorageBackend, tmp_path: Path) -> None:
    record = {"record": {"path": str(tmp_path / "runs.log")}}
    manager = TriggerManager(storage)
    manager.update_configuration({
        "fan": {"after": FAN_IN, "run": "tests.record", "withParams": record},
        "every": {"after": ["start"], "andEvery": "tick", "run": "tests.record",
                  "withParams": record},
    })
    manager.fire("start")
    _spawn(_fire_many, storage.reference(), count=PROCESSES)

    fired = storage.latest_kwargs
    for p in range(PROCESSES):
        for k in range(TRIGGERS):
            assert fired[f"e{p}_{k}"] == {"p": p, "k": k}
    runs = Counter((tmp_path / "runs.log").read_text().split())
    assert runs["fan#0"] == 1
    assert [i.status for i in storage.instances_of_task("fan")] == ["finished"]
    ticks = storage.instances_of_task("every")
    assert len(ticks) == PROCESSES * TICKS
    assert all(i.status == "finished" for i in ticks)
    assert sorted((i.kwargs["tick"]["p"], i.kwargs["tick"]["k"]) for i in ticks) == sorted(
        (p, k) for p in range(PROCESSES) for k in range(TICKS))
    assert set(runs) == {"fan#0"} | {i.name for i in ticks}
    assert set(runs.values()) == {1}
    assert storage.get_unresolved_instances() == []
    assert storage.is_finalized


ROUNDS = 15


def _finish_last_task(number: int, barrier: Any, references: list[JsonDict], log: str) -> None:
    import tests.tasks  # noqa: F401 - registers the tasks in this process

    def count(sender: Any, session_uid: str, **kwargs: Any) -> None:
        with open(log, "a", encoding="utf-8") as file:
            file.write(session_uid + "\n")

    with connected(count, session_finalized):
        for reference in references:
            manager = TriggerManager(open_reference(reference))
            barrier.wait(timeout=60)
            manager.fire("a" if number == 0 else "b")


def test_two_processes_finishing_the_last_tasks_finalize_once(
        make_storage: Any, tmp_path: Path) -> None:
    storages = [make_storage() for _ in range(ROUNDS)]
    record = {"record": {"path": str(tmp_path / "runs.log")}}
    for number, storage in enumerate(storages):
        configuration = {"x": {"after": ["a"], "run": "tests.noop"},
                         "y": {"after": ["b"], "run": "tests.noop"}}
        if number % 2:  # a task that waits for finalization, or only the signal
            configuration["report"] = {"after": ["sessionFinalized"], "run": "tests.record",
                                       "withParams": record}
        TriggerManager(storage).update_configuration(configuration)
    log = tmp_path / "finalized.log"
    _spawn(_finish_last_task, [s.reference() for s in storages], str(log), count=2)

    finalized = Counter(log.read_text().split())
    assert finalized == Counter({storage.uid: 1 for storage in storages})
    reports = Counter((tmp_path / "runs.log").read_text().split())
    assert reports == Counter({"report#0": ROUNDS // 2})
    for number, storage in enumerate(storages):
        assert storage.is_finalized
        assert [i.status for i in storage] == ["finished"] * (2 + number % 2)
