"""Hostile: many writers at once on one session — eight processes (and threads) firing
fan-ins, andEvery backlogs with a vacant ``#0``, ``unless`` vetoes and downstream chains; a
Redis server restarted mid-run; processes killed between a commit and what follows it.

Each finished instance records its run in a file, so runs are counted across processes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py

from tests.backends import REDIS_URL
from tests.hostile import workers
from tests.hostile.workers import FAN, KEYED, PAGES, TICKS, VPAGES, WORKERS
from tests.recovery_helpers import free_port, open_work, started, with_record
from triggerhooks import RedisStorageBackend, SqliteStorageBackend, TriggerManager
from triggerhooks.signals import session_finalized
from triggerhooks.storages import StorageBackend
from triggerhooks.testing import wait_for
from triggerhooks.testing.signals import connected


def _runs(record: Path) -> Counter[str]:
    return Counter(record.read_text().split()) if record.exists() else Counter()


def check_everything(storage: StorageBackend, record: Path, finalized_log: Path) -> None:
    """What :func:`workers.fire_everything` run by eight writers must leave, exactly."""
    manager = TriggerManager(storage)
    runs = _runs(record)
    instances = storage.instances
    finished = {name for name, i in instances.items() if i.status == "finished"}
    assert set(runs) == finished, "every finished instance ran, and nothing else"
    assert set(runs.values()) == {1}, f"ran twice: {[n for n, c in runs.items() if c > 1]}"

    first = {trigger: {"phase": 1, "w": n % WORKERS} for n, trigger in enumerate(FAN)}
    for task, extra in (("fan", {}), ("fan_late", {"go": {"by": 0}})):
        [only] = storage.instances_of_task(task)
        assert only.status == "finished"
        received = dict(only.kwargs)
        received.pop("record")
        assert received == {**first, **extra}, f"{task} does not hold the first firings"

    pages = storage.instances_of_task("pages")
    assert len(pages) == WORKERS * PAGES, "one instance per page firing, the vacant #0 included"
    assert sorted((i.kwargs["page"]["w"], i.kwargs["page"]["k"]) for i in pages) == sorted(
        (w, k) for w in range(WORKERS) for k in range(PAGES))
    assert all(i.status == "finished" for i in pages)
    assert all(i.kwargs["open1"] == {"by": 0} and i.kwargs["open2"] == {"by": 2} for i in pages)

    vet = storage.instances_of_task("vet")
    with_page = [i for i in vet if "vpage" in i.kwargs]
    assert sorted((i.kwargs["vpage"]["w"], i.kwargs["vpage"]["k"]) for i in with_page) == sorted(
        (w, k) for w in range(WORKERS) for k in range(VPAGES)), "every vetoed firing leaves one record"
    assert [i.name for i in vet if "vpage" not in i.kwargs] in ([], ["vet#0"])
    assert all(i.status == "abandoned" and i.metadata["abandoned"]["unless"] in ("u1", "u2")
               for i in vet)

    [down] = storage.instances_of_task("vet_down")
    assert down.status == "abandoned" and down.metadata["abandoned"]["upstream"].startswith("vet#")
    down2 = storage.instances_of_task("vet_down2")
    ticks = [i for i in down2 if "tick" in i.kwargs]
    assert sorted((i.kwargs["tick"]["w"], i.kwargs["tick"]["k"]) for i in ticks) == sorted(
        (w, k) for w in range(WORKERS) for k in range(TICKS))
    assert [i.name for i in down2 if "tick" not in i.kwargs] in ([], ["vet_down2#0"])
    assert [(i.name, i.status, i.metadata.get("abandoned")) for i in down2
            if i.status != "abandoned" or i.metadata["abandoned"]["upstream"] != "vet_down#0"] == []

    per_page = storage.instances_of_task("per_page")
    assert sorted(i.kwargs["pages"]["ran"] for i in per_page) == sorted(i.name for i in pages)
    for task in ("chain1", "chain2", "final", *(f"end{p}" for p in range(WORKERS))):
        assert [i.status for i in storage.instances_of_task(task)] == ["finished"], task

    assert storage.get_unresolved_instances() == []
    assert storage.is_finalized
    assert len(finalized_log.read_text().splitlines()) == 1, "finalized exactly once"
    assert manager.stuck() == []
    assert manager.recover() == [], "nothing was left for a recovery to repair"


# -- eight threads (memory: one process is all a memory session has) ------------------------------


@pytest.mark.parametrize("backend", ["memory"], indirect=True)
def test_eight_threads_fire_fan_ins_backlogs_vetoes_and_chains_into_memory(
        storage: StorageBackend, tmp_path: Path) -> None:
    record, finalized_log = tmp_path / "runs.log", tmp_path / "finalized.log"
    TriggerManager(storage).update_configuration(workers.configuration(str(record)))
    barrier = threading.Barrier(WORKERS)
    errors: list[BaseException] = []

    def run(worker: int) -> None:
        try:
            workers.fire_everything(worker, TriggerManager(storage),
                                    lambda: barrier.wait(timeout=60))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(WORKERS)]
    with connected(workers.count_finalizations(str(finalized_log), -1), session_finalized):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert errors == []
    check_everything(storage, record, finalized_log)


def test_reconfiguring_while_writers_fire_leaves_no_instance_waiting(
        make_storage: Any) -> None:
    """Four writers fire an andEvery trigger while a fifth drops the trigger every instance
    waits for from ``after``: each firing gets one instance, and every one runs."""
    storage = make_storage()
    configuration = {"pages": {"after": ["a", "b"], "andEvery": "p", "run": "tests.noop"},
                     "one": {"after": ["a", "b"], "run": "tests.noop"}}
    TriggerManager(storage).update_configuration(configuration)
    TriggerManager(storage).fire("a")  # pages#0: vacant
    barrier = threading.Barrier(5)
    errors: list[BaseException] = []

    def fire(n: int) -> None:
        manager = TriggerManager(make_storage(storage.uid))
        barrier.wait(30)
        for k in range(20):
            manager.fire("p", {"n": n, "k": k})

    def reconfigure() -> None:
        manager = TriggerManager(make_storage(storage.uid))
        barrier.wait(30)
        manager.update_configuration({name: {**config, "after": ["a"]}
                                      for name, config in configuration.items()})

    def guarded(target: Any, *args: Any) -> None:
        try:
            target(*args)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(fire, n)) for n in range(4)]
    threads.append(threading.Thread(target=guarded, args=(reconfigure,)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    pages = storage.instances_of_task("pages")
    assert sorted((i.kwargs["p"]["n"], i.kwargs["p"]["k"]) for i in pages) == sorted(
        (n, k) for n in range(4) for k in range(20))
    assert {i.name: i.status.value for i in storage if i.status != "finished"} == {}
    assert storage.is_finalized and TriggerManager(storage).recover() == []


# -- eight processes: SQLite, Redis, and a Redis server restarted mid-run -------------------------


class OwnRedis:
    """A ``redis-server`` of this test's own on a spare port, without persistence of its own;
    :meth:`restart` saves (``SHUTDOWN SAVE``) and starts it again from that file, so every
    connection drops while the data stays."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._answers, 20, f"redis-server on port {self.port}")

    def _answers(self) -> bool:
        try:
            return bool(redis_py.Redis(port=self.port, socket_timeout=1).ping())
        except redis_py.ConnectionError:
            return False

    def restart(self) -> None:
        assert self.process is not None
        with contextlib.suppress(redis_py.ConnectionError):  # it closes it as it exits
            redis_py.Redis(port=self.port, socket_timeout=5).shutdown(save=True)
        self.process.wait(10)
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture(scope="module")
def eight_processes(tmp_path_factory: pytest.TempPathFactory,
                    redis_prefix: str) -> Iterator[dict[str, Any]]:
    """Run every many-process scenario in one spawn of eight processes; what each left."""
    directory = tmp_path_factory.mktemp("eight")
    server = OwnRedis(directory)
    server.start()
    uid = f"hostile-{uuid.uuid4().hex[:8]}"
    storages: dict[str, StorageBackend] = {
        "sqlite": SqliteStorageBackend(uid, directory / "th.sqlite3"),
        "redis": RedisStorageBackend(uid, REDIS_URL, prefix=f"{redis_prefix}-eight"),
        "restarted": RedisStorageBackend(uid, server.url, prefix="hostile"),
        "killed": RedisStorageBackend(uid, REDIS_URL, prefix=f"{redis_prefix}-killed"),
    }
    records = {name: directory / f"{name}-runs.log" for name in storages}
    logs = {f"{name}-finalized": str(directory / f"{name}-finalized.log") for name in storages}
    logs.update(progress=str(directory / "progress.log"), errors=str(directory / "errors.log"),
                **{"kill-progress": str(directory / "kill-progress.log")})
    for name in ("sqlite", "redis"):
        TriggerManager(storages[name]).update_configuration(
            workers.configuration(str(records[name])))
    restarted = TriggerManager(storages["restarted"])
    restarted.update_configuration(workers.restart_configuration(str(records["restarted"])))
    restarted.fire("open", {"at": "start"})  # rpages#0 waits, vacant, for its first page
    killed = TriggerManager(storages["killed"])
    killed.update_configuration(workers.killed_configuration(str(records["killed"])))
    killed.fire("open")

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    references = {name: storage.reference() for name, storage in storages.items()}
    processes = [ctx.Process(target=workers.all_scenarios, args=(n, barrier, references, logs))
                 for n in range(WORKERS)]
    try:
        for process in processes:
            process.start()
        progress = Path(logs["progress"])
        # Mid-run: a sixth of the keyed firings are stored, the rest are on their way.
        wait_for(lambda: progress.exists() and len(progress.read_text().split()) > 80, 120,
                 "the keyed firings to be under way")
        server.restart()
        kill_progress = Path(logs["kill-progress"])
        for victim, when in VICTIMS.items():  # SIGKILL, wherever each is in its firing
            wait_for(lambda when=when: kill_progress.exists()
                     and len(kill_progress.read_text().split()) >= when, 120,
                     f"{when} keyed firings")
            os.kill(processes[victim].pid or 0, signal.SIGKILL)
        for process in processes:
            process.join(timeout=120)
        assert [p.exitcode for p in processes] == [
            -signal.SIGKILL if n in VICTIMS else 0 for n in range(WORKERS)]
        yield {"storages": storages, "records": records, "logs": logs}
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
        storages["redis"].clear()
        storages["killed"].clear()
        server.stop()


VICTIMS = {1: 20, 4: 70, 6: 130}
"""The workers killed in the last scenario, each once that many of its keyed rounds are done."""


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sqlite", "redis"])
def test_eight_processes_fire_fan_ins_backlogs_vetoes_and_chains(
        eight_processes: dict[str, Any], name: str) -> None:
    check_everything(eight_processes["storages"][name], eight_processes["records"][name],
                     Path(eight_processes["logs"][f"{name}-finalized"]))


@pytest.mark.slow
def test_keyed_firings_survive_a_redis_restart_mid_run(eight_processes: dict[str, Any]) -> None:
    storage = eight_processes["storages"]["restarted"]
    logs = eight_processes["logs"]
    errors = Path(logs["errors"]).read_text().splitlines() if Path(logs["errors"]).exists() else []
    assert errors, "the restart came after every firing: it tested nothing"
    manager = TriggerManager(storage, claim_grace_seconds=0.01)

    def settled() -> bool:
        # What did not follow a commit whose reply the restart cut off (a hand-off, what a
        # firing cut between its two round trips made ready, a task's outcome) is a
        # recovery's: a repeat with the same key answers what the first firing did, and
        # hands nothing off; an outcome not stored leaves its instance running until its
        # lease runs out.
        manager.recover()
        return not open_work(storage)

    wait_for(settled, 30, "a recovery to repair what the restart cut off")
    record = eight_processes["records"]["restarted"]
    runs = _runs(record)
    pages = storage.instances_of_task("rpages")
    assert sorted((i.kwargs["page"]["w"], i.kwargs["page"]["k"]) for i in pages) == sorted(
        (w, k) for w in range(WORKERS) for k in range(KEYED)), "a keyed firing lost or doubled"
    assert [(i.name, i.status, i.kwargs.get("open"), i.metadata) for i in pages
            if i.status != "finished" or i.kwargs.get("open") != {"at": "start"}] == []
    [fan] = storage.instances_of_task("rfan")
    assert fan.status == "finished" and len(fan.kwargs) == WORKERS * KEYED + 1
    assert set(runs) == {i.name for i in storage if i.status == "finished"}
    for name, count in runs.items():  # run again only when taken over: once per attempt at most
        claim = storage[name].metadata.get("claim") or {"attempt": 1}
        assert count <= claim["attempt"], f"{name} ran {count} times"
    assert [i.name for i in storage.instances_of_task("rfinal")] == ["rfinal#0"]
    assert storage.is_finalized
    finalized = Path(logs["restarted-finalized"])
    finalized_lines = finalized.read_text().splitlines() if finalized.exists() else []
    assert len(finalized_lines) <= 1  # (or by the recovery above, in this process)
    assert manager.recover() == [] and manager.stuck() == []


@pytest.mark.slow
def test_workers_killed_mid_run_then_every_key_fired_again_leave_everything_once(
        eight_processes: dict[str, Any]) -> None:
    """Three of eight workers SIGKILLed wherever they were (between a Redis fire's two round
    trips, between a commit and its hand-off, mid-task); a supervisor fires every key again
    and recovers: every firing is stored once, every instance ends once, and nothing is
    lost — each task ran once, but those whose worker died mid-run (at least once)."""
    storage = eight_processes["storages"]["killed"]
    manager = TriggerManager(storage, claim_grace_seconds=0.01)
    for worker in range(WORKERS):
        workers.killable_firings(worker, manager, None)

    def settled() -> bool:
        manager.recover()
        return not open_work(storage)

    wait_for(settled, 30, "a recovery to repair what the killed workers left")
    keys = sorted((w, k) for w in range(WORKERS) for k in range(workers.KILLED_KEYS))
    pages = storage.instances_of_task("kpages")
    assert sorted((i.kwargs["page"]["w"], i.kwargs["page"]["k"]) for i in pages) == keys
    assert all(i.status == "finished" for i in pages)
    vet = storage.instances_of_task("kvet")
    assert sorted((i.kwargs["vpage"]["w"], i.kwargs["vpage"]["k"]) for i in vet) == keys
    assert all(i.status == "abandoned" for i in vet), "never ran: 'never' never fired"
    assert [i.status for i in storage.instances_of_task("kvdown")] == ["abandoned"]
    down2 = storage.instances_of_task("kvdown2")
    assert sorted((i.kwargs["page"]["w"], i.kwargs["page"]["k"]) for i in down2) == keys
    assert all(i.status == "abandoned" for i in down2)
    runs = _runs(eight_processes["records"]["killed"])
    assert set(runs) == {i.name for i in storage if i.status == "finished"}
    for name, count in runs.items():
        claim = storage[name].metadata.get("claim") or {"attempt": 1}
        assert count <= claim["attempt"], f"{name} ran {count} times"
    for task in ("kfan", "kdown", "kfinal"):
        assert [i.status for i in storage.instances_of_task(task)] == ["finished"], task
    assert storage.is_finalized and manager.recover() == []


# -- processes killed between a commit and what follows it ---------------------------------------


def _killed_scenarios(make_storage: Any, tmp_path: Path) -> None:
    """Three sessions, three processes at once: one dies in ``post_fire`` right after the
    firing that released an andEvery backlog (its hand-offs never happen), one in
    ``instance_abandoned`` right after a veto that abandoned a chain (finalization never
    happens), one is SIGKILLed while its task runs (its lease runs out)."""
    record = tmp_path / "runs.log"
    params = {"withParams": {"record": {"path": str(record)}}, "run": "tests.record"}

    backlog = make_storage()
    TriggerManager(backlog).update_configuration({
        "pages": {"after": ["open"], "andEvery": "page", **params},
        "final": {"after": ["sessionFinalized"], **params}})
    for k in range(5):
        TriggerManager(backlog).fire("page", {"k": k})

    veto = make_storage()
    TriggerManager(veto).update_configuration({
        "up": {"after": ["go"], "unless": ["stop"], **params},
        "down": {"after": ["up", "x"], **params},
        "down2": {"after": ["down"], "andEvery": "tick", **params},
        "final": {"after": ["sessionFinalized"], **params}})
    TriggerManager(veto).fire("x", {"x": 1})
    TriggerManager(veto).fire("tick", {"k": 0})

    held = make_storage()
    hold = tmp_path / "hold"
    hold.touch()
    held_record = tmp_path / "held.log"
    TriggerManager(held).update_configuration({
        "slow": {"after": ["a"], "run": "recovery.record",
                 "withParams": with_record(held_record, hold=str(hold))},
        "after_slow": {"after": ["slow"], **params}})

    ctx = multiprocessing.get_context("spawn")
    doomed = [ctx.Process(target=workers.fire_then_die,
                          args=(backlog.reference(), "open", "post_fire")),
              ctx.Process(target=workers.fire_then_die,
                          args=(veto.reference(), "stop", "instance_abandoned"))]
    holder = ctx.Process(target=workers.fire_and_hold, args=(held.reference(), "a"))
    for process in (*doomed, holder):
        process.start()
    for process in doomed:
        process.join(60)
    assert [p.exitcode for p in doomed] == [17, 17], "each died in its receiver"

    # The backlog was scheduled, and never handed off.
    assert [i.status for i in backlog.instances_of_task("pages")] == ["scheduled"] * 5
    recovering = TriggerManager(backlog, claim_grace_seconds=0.01)
    wait_for(lambda: len(recovering.stuck()) == 5, 10, "the grace time to pass")
    done = recovering.recover()
    assert sorted(entry.instance or "" for entry in done if entry.action == "handed off") == [
        f"pages#{k}" for k in range(5)]
    assert [i.kwargs["page"] for i in backlog.instances_of_task("pages")] == [
        {"k": k} for k in range(5)]

    # The veto and its chain were stored whole; the finalization that follows was not.
    assert {i.name: i.status.value for i in veto} == {
        "up#0": "abandoned", "down#0": "abandoned", "down2#0": "abandoned"}
    assert veto["down#0"].kwargs == {"x": {"x": 1}}
    assert not veto.is_finalized
    assert [entry.action for entry in TriggerManager(veto).recover()] == ["finalized"]
    assert veto.is_finalized

    # The held task: running, its lease held by the other process, then lost with it.
    wait_for(lambda: started(held_record)["slow#0"] == 1, 60, "slow#0 to start")
    why = TriggerManager(held).explain("after_slow")
    slow = why.after[0].upstream
    assert slow is not None and slow.state == "running"
    [fact] = slow.instances
    assert fact.worker and f":{holder.pid}/" in fact.worker and fact.lease_until
    assert any("lease holds until" in cause for cause in why.root_causes)
    assert holder.pid is not None
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(30)
    manager = TriggerManager(held)
    wait_for(manager.stuck, 30, "the lease of slow#0 to expire")
    assert any("lease expired" in cause for cause in manager.explain("after_slow").root_causes)
    assert [entry.action for entry in manager.recover()] == ["handed off"]
    assert held["slow#0"].status == "finished" and held["after_slow#0"].status == "finished"
    assert started(held_record) == Counter({"slow#0": 2}), "started again once, on attempt 2"

    runs = _runs(record)
    assert runs == Counter({**{f"pages#{k}": 1 for k in range(5)}, "final#0": 2,
                            "after_slow#0": 1}), "each ran once (final#0: once per session)"
    for storage in (backlog, veto, held):
        assert TriggerManager(storage).recover() == []
        assert storage.is_finalized


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "redis"], indirect=True)
def test_processes_killed_between_a_commit_and_what_follows_are_repaired_by_a_recovery(
        make_storage: Any, tmp_path: Path) -> None:
    _killed_scenarios(make_storage, tmp_path)
