"""What the hostile tests' processes (or threads) do: fire the triggers of fan-ins, andEvery
tasks with a vacant ``#0``, ``unless`` vetoes and downstream chains into one session at once.

Importable by spawned processes: importing it registers the shared test tasks.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import tests.tasks  # noqa: F401 - registers tests.record and friends in this process
from triggerhooks import TriggerManager
from triggerhooks.exceptions import StorageUnavailableError
from triggerhooks.serialization import JsonDict
from triggerhooks.signals import session_finalized
from triggerhooks.storages import StorageBackend, open_reference
from triggerhooks.testing.signals import connected

WORKERS = 8
FAN = [f"f{n}" for n in range(400)]
"""The fan-in: each worker fires its own slice in phase 1, and others' again in phase 2."""
PAGES = 10
VPAGES = 5
TICKS = 3
EXPLAINED = ("fan_late", "vet_down2", "pages", "chain2", "per_page", "vet")


def configuration(record: str) -> dict[str, Any]:
    """The session every worker fires into; ``record``: the file tests.record appends to."""
    def task(**directives: Any) -> dict[str, Any]:
        return {**directives, "run": "tests.record", "withParams": {"record": {"path": record}}}

    return {
        "fan": task(after=FAN),
        "fan_late": task(after=[*FAN, "go"]),  # waits through phase 2: keeps first firings
        "pages": task(after=["open1", "open2"], andEvery="page"),
        "vet": task(after=["never"], andEvery="vpage", unless=["u1", "u2"]),
        "vet_down": task(after=["vet", "go"]),
        "vet_down2": task(after=["vet_down"], andEvery="tick"),
        "chain1": task(after=["fan"]),
        "chain2": task(after=["chain1", "pages"]),
        "per_page": task(after=["chain1"], andEvery="pages"),
        **{f"end{p}": task(after=[f"go{p}"]) for p in range(WORKERS)},
        "final": task(after=["sessionFinalized"]),
    }


def mine(worker: int) -> list[str]:
    return FAN[worker::WORKERS]


def others(worker: int) -> list[str]:
    """Phase 2: a tenth of another worker's slice, fired again with other kwargs."""
    return mine((worker + 1) % WORKERS)[::10]


def count_finalizations(finalized_log: str, worker: int) -> Callable[..., None]:
    """A ``session_finalized`` receiver that appends a line to ``finalized_log``."""
    def finalized(sender: Any, session_uid: str, **kwargs: Any) -> None:
        with open(finalized_log, "a", encoding="utf-8") as log:
            log.write(f"{session_uid} {worker}\n")
    return finalized


def fire_everything(worker: int, manager: TriggerManager, wait: Callable[[], Any]) -> None:
    """One worker's part; ``wait``: the barrier between the phases."""
    wait()
    _first_firings(worker, manager)
    wait()
    # phase 2: later firings of triggers that waiting instances received already
    for trigger in others(worker):
        manager.fire(trigger, {"phase": 2, "w": worker})
    manager.fire("open1", {"by": worker, "again": True})
    wait()
    if worker == 0:
        manager.fire("go", {"by": 0})
    wait()
    # phase 3: the last tasks finish side by side: one of these finalizes the session
    manager.fire(f"go{worker}")


def _first_firings(worker: int, manager: TriggerManager) -> None:
    """Phase 1: every trigger's first firing, interleaved with andEvery firings and a veto."""
    for k, trigger in enumerate(mine(worker)):
        manager.fire(trigger, {"phase": 1, "w": worker})
        if k < PAGES:
            manager.fire("page", {"w": worker, "k": k})
        if k < VPAGES:
            manager.fire("vpage", {"w": worker, "k": k})
        if k < TICKS:
            manager.fire("tick", {"w": worker, "k": k})
        if k == 3 and worker == 0:
            manager.fire("open1", {"by": 0})
            manager.fire("u1", {"by": 0})
        if k == 4 and worker == 1:
            manager.fire("u2", {"by": 1})
        if k == 6 and worker == 2:
            manager.fire("open2", {"by": 2})
        if worker == WORKERS - 1 and k % 10 == 0:
            for task in EXPLAINED:  # explaining while others write
                json.dumps(manager.explain(task).to_json())


# -- a Redis server restarted mid-run ------------------------------------------------------------

KEYED = 30
"""Keyed firings of ``page`` per worker, and of its own triggers of the fan-in ``rfan``."""


def restart_configuration(record: str) -> dict[str, Any]:
    def task(**directives: Any) -> dict[str, Any]:
        return {**directives, "run": "tests.record", "withParams": {"record": {"path": record}}}

    return {
        "rpages": task(after=["open"], andEvery="page"),
        "rfan": task(after=[f"r{w}_{k}" for w in range(WORKERS) for k in range(KEYED)]),
        "rdown": task(after=["rfan"]),
        "rfinal": task(after=["sessionFinalized"]),
    }


def keyed_firings(worker: int, manager: TriggerManager, wait: Callable[[], Any],
                  logs: dict[str, str]) -> None:
    """Fire ``page`` and the worker's triggers of ``rfan``, each with a key, retrying each
    with the same key while the server is away (it restarts meanwhile)."""
    wait()
    for k in range(KEYED):
        _retrying(lambda k=k: manager.fire("page", {"w": worker, "k": k}, key=f"p-{worker}-{k}"),
                  logs, worker)
        _retrying(lambda k=k: manager.fire(f"r{worker}_{k}", {"w": worker},
                                           key=f"r-{worker}-{k}"), logs, worker)


def _retrying(call: Callable[[], Any], logs: dict[str, str], worker: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            call()
        except StorageUnavailableError as exc:
            _append(logs["errors"], f"{worker} {exc.committed}")
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
        else:
            _append(logs["progress"], str(worker))
            return


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


# -- workers killed at random points, then a supervisor that fires every key again ----------------

KILLED_KEYS = 40


def killed_configuration(record: str) -> dict[str, Any]:
    def task(**directives: Any) -> dict[str, Any]:
        return {**directives, "run": "tests.record", "withParams": {"record": {"path": record}}}

    return {
        "kpages": task(after=["open"], andEvery="page"),
        "kfan": task(after=[f"k{w}_{k}" for w in range(WORKERS) for k in range(KILLED_KEYS)]),
        "kdown": task(after=["kfan"]),
        "kvet": task(after=["open", "never"], andEvery="vpage", unless=["stop"]),
        "kvdown": task(after=["kvet"]),
        "kvdown2": task(after=["kvdown"], andEvery="page"),
        "kfinal": task(after=["sessionFinalized"]),
    }


def killable_firings(worker: int, manager: TriggerManager, progress: str | None) -> None:
    """Every firing of one worker, each with a key (a supervisor fires them all again)."""
    for k in range(KILLED_KEYS):
        manager.fire("page", {"w": worker, "k": k}, key=f"p-{worker}-{k}")
        manager.fire(f"k{worker}_{k}", {"w": worker}, key=f"k-{worker}-{k}")
        manager.fire("vpage", {"w": worker, "k": k}, key=f"v-{worker}-{k}")
        if worker == 0 and k == KILLED_KEYS // 2:
            manager.fire("stop", key="stop")
        if progress is not None:
            _append(progress, str(worker))


def all_scenarios(worker: int, barrier: Any, references: dict[str, JsonDict],
                  logs: dict[str, str]) -> None:
    """One spawned process's part in every many-process scenario (one spawn for all: starting
    eight interpreters costs more than the scenarios)."""
    def wait() -> None:
        barrier.wait(timeout=120)

    for backend in ("sqlite", "redis"):
        manager = TriggerManager(open_reference(references[backend]))
        with connected(count_finalizations(logs[f"{backend}-finalized"], worker),
                       session_finalized):
            fire_everything(worker, manager, wait)
    # Short leases: an outcome the restart kept from being stored is taken over soon.
    manager = TriggerManager(open_reference(references["restarted"]), lease_seconds=1.0)
    with connected(count_finalizations(logs["restarted-finalized"], worker), session_finalized):
        keyed_firings(worker, manager, wait, logs)
    wait()
    # Last: the test SIGKILLs some of the workers while they fire.
    manager = TriggerManager(open_reference(references["killed"]), lease_seconds=1.0)
    killable_firings(worker, manager, logs["kill-progress"])


# -- a process killed between a firing and its follow-up ---------------------------------------


def fire_then_die(reference: JsonDict, trigger: str, kill_on: str) -> None:
    """Fire ``trigger``; the process dies (``os._exit``) as soon as the signal ``kill_on`` is
    sent: after the commit, before what follows it (hand-offs, finalization)."""
    from triggerhooks import signals

    def die(sender: Any, **kwargs: Any) -> None:
        os._exit(17)

    getattr(signals, kill_on).connect(die)
    TriggerManager(open_reference(reference)).fire(trigger, {"by": "doomed"})
    os._exit(0)  # not reached when the signal came


def fire_and_hold(reference: JsonDict, trigger: str) -> None:
    """Fire ``trigger`` with one-second leases: the task it runs holds (see
    ``tests.recovery_helpers.Record``) until the test kills this process."""
    import tests.recovery_helpers  # noqa: F401 - registers recovery.record

    TriggerManager(open_reference(reference), lease_seconds=1.0).fire(trigger, {"by": "doomed"})


def opener(storage: StorageBackend) -> Callable[[], StorageBackend]:
    """How a thread opens the session (memory: the same store; others: the reference)."""
    reference = storage.reference()
    if reference.get("backend") == "memory":
        return lambda: storage
    return lambda: open_reference(reference)
