"""Hostile: waiting instances, abandonment that reaches downstream, and the explainer, as a
user who read only the docs attacks them — on every backend.

(The many-writer attacks — processes, threads, kills, a Redis restart — are in
``test_concurrent_hostile.py``.)
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.backends import REDIS_URL
from tests.recovery_helpers import record_only
from triggerhooks import RedisStorageBackend, TriggerManager, open_storage, trigger_task
from triggerhooks.cli import cli
from triggerhooks.core.explain import NESTED
from triggerhooks.core.types import Plan
from triggerhooks.exceptions import InstanceNotFoundError
from triggerhooks.runners import ThreadingTaskRunner
from triggerhooks.storages import StorageBackend
from triggerhooks.testing import HoldingRunner, run_transition, wait_for

_RELEASE = threading.Event()


@trigger_task(name="hostile.blocking")
def blocking(context: Any) -> dict[str, Any]:
    """Runs until the test sets ``_RELEASE``."""
    _RELEASE.wait(30)
    return {"done": True}


def _statuses(storage: StorageBackend) -> dict[str, str]:
    return {instance.name: instance.status.value for instance in storage}


# -- downstream of an abandoned task: after, and andEvery on a task's name ------------------------


def test_a_task_whose_and_every_trigger_is_an_abandoned_task_is_abandoned_too(
        manager: TriggerManager) -> None:
    """"andEvery may name a task", and "every task that waits for that name is abandoned
    too": a task that runs once per finished instance of a vetoed one-shot task waits for
    its name as much as one with it in ``after`` — left waiting, the session never ends."""
    manager.update_configuration({
        "up": {"after": ["go"], "unless": ["stop"], "run": "tests.echo"},
        "per_up": {"after": ["x"], "andEvery": "up", "run": "tests.echo"},
        "per_up_bare": {"after": [], "andEvery": "up", "run": "tests.echo"},
        "after_per_up": {"after": ["per_up"], "run": "tests.echo"},
    })
    manager.fire("x", {"x": 1})  # per_up#0: vacant, waiting for a finished up
    manager.fire("stop")
    storage = manager.storage
    reason = {"unless": "stop", "upstream": "up#0"}
    assert (storage["per_up#0"].status, storage["per_up#0"].kwargs) == ("abandoned", {"x": {"x": 1}})
    assert storage["per_up#0"].metadata["abandoned"] == reason
    assert storage["per_up_bare#0"].metadata["abandoned"] == reason
    assert storage["after_per_up#0"].metadata["abandoned"] == {"unless": "stop",
                                                               "upstream": "per_up#0"}
    assert manager.explain("per_up").state == "blocked"
    assert storage.is_finalized
    manager.fire("up", {"by": "hand"})  # does not revive it: recorded, abandoned at once
    assert storage["per_up#1"].status == "abandoned"
    assert storage.get_unresolved_instances() == []


def test_a_diamond_and_a_fan_out_are_abandoned_once_each(manager: TriggerManager) -> None:
    manager.update_configuration({
        "a": {"after": ["go"], "unless": ["stop"], "run": "tests.echo"},
        "b": {"after": ["a"], "run": "tests.echo"},
        "c": {"after": ["a", "side"], "run": "tests.echo"},
        "d": {"after": ["b", "c"], "run": "tests.echo"},
        "e": {"after": ["d"], "andEvery": "tick", "run": "tests.echo"},
    })
    manager.fire("side", {"s": 1})
    manager.fire("tick", {"k": 1})
    manager.fire("stop")
    manager.fire("tick", {"k": 2})
    storage = manager.storage
    assert set(_statuses(storage).values()) == {"abandoned"}
    assert sorted(storage.instances) == ["a#0", "b#0", "c#0", "d#0", "e#0", "e#1"]
    assert storage["c#0"].kwargs == {"side": {"s": 1}}
    assert storage["d#0"].metadata["abandoned"]["upstream"] in ("b#0", "c#0")
    assert [i.kwargs for i in storage.instances_of_task("e")] == [{"tick": {"k": 1}},
                                                                 {"tick": {"k": 2}}]
    assert storage.is_finalized


def test_unless_naming_tasks_in_a_loop_ends_and_finalizes(manager: TriggerManager) -> None:
    """Cycles of vetoes (which configuration allows: only ``after`` cycles are refused): each
    task runs at most once, what the first one vetoes is abandoned with its chain, and the
    session finalizes."""
    manager.update_configuration({
        "left": {"after": ["go"], "unless": ["right"], "run": "tests.echo"},
        "right": {"after": ["go", "late"], "unless": ["left"], "run": "tests.echo"},
        "after_right": {"after": ["right"], "run": "tests.echo"},
        "self_veto": {"after": [], "andEvery": "page", "unless": ["self_veto"],
                      "run": "tests.echo"},
    })
    manager.fire("late")
    manager.fire("go")
    manager.fire("page", {"n": 1})  # runs, and its name vetoes its later firings
    manager.fire("page", {"n": 2})
    storage = manager.storage
    assert _statuses(storage) == {
        "left#0": "finished", "right#0": "abandoned", "after_right#0": "abandoned",
        "self_veto#0": "finished", "self_veto#1": "abandoned"}
    assert storage["right#0"].metadata["abandoned"] == {"unless": "left"}
    assert storage["self_veto#1"].kwargs == {"page": {"n": 2}}
    assert storage.is_finalized


# -- reconfiguring a session while instances wait -------------------------------------------------


def test_dropping_the_missing_trigger_from_after_schedules_the_waiting_instance(
        manager: TriggerManager) -> None:
    """A task replaced while its instance waits: once all of the new ``after`` has fired, the
    instance must not stay unstarted ("no instance stuck unstarted when all its triggers
    fired") until another firing or a recovery comes by."""
    manager.update_configuration({
        "t": {"after": ["a", "b"], "run": "tests.echo"},
        "pages": {"after": ["a", "b"], "andEvery": "p", "run": "tests.echo"},
    })
    manager.fire("a", {"n": 1})
    manager.fire("p", {"k": 1})
    manager.fire("p", {"k": 2})
    manager.update_configuration({
        "t": {"after": ["a"], "run": "tests.echo"},
        "pages": {"after": ["a"], "andEvery": "p", "run": "tests.echo"},
    })
    storage = manager.storage
    assert (storage["t#0"].status, storage["t#0"].kwargs) == ("finished", {"a": {"n": 1}})
    assert [(i.status, i.kwargs) for i in storage.instances_of_task("pages")] == [
        ("finished", {"a": {"n": 1}, "p": {"k": 1}}), ("finished", {"a": {"n": 1}, "p": {"k": 2}})]
    assert storage.is_finalized
    assert manager.recover() == []


def test_an_and_every_task_made_one_shot_runs_its_vacant_instance(manager: TriggerManager) -> None:
    """A vacant ``#0`` waits for an andEvery firing; once the task has no andEvery trigger
    any more, it waits only for ``after`` — otherwise nothing (not even a recovery) ever
    schedules it and the session never finalizes."""
    manager.update_configuration({"t": {"after": ["a", "b"], "andEvery": "p", "run": "tests.echo"}})
    manager.fire("a", {"n": 1})
    assert manager.explain("t").instances[0].detail.startswith("waits for a firing of its andEvery")
    manager.update_configuration({"t": {"after": ["a", "b"], "run": "tests.echo"}})
    assert manager.explain("t").instances[0].detail == "waits for its after triggers"
    manager.fire("b", {"m": 2})
    storage = manager.storage
    assert (storage["t#0"].status, storage["t#0"].kwargs) == ("finished",
                                                              {"a": {"n": 1}, "b": {"m": 2}})
    assert storage.is_finalized


def test_a_grown_after_keeps_the_instance_waiting_with_first_firings(
        manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a", "b"], "run": "tests.echo"}})
    manager.fire("a", {"n": 1})
    manager.update_configuration({"t": {"after": ["a", "b", "c"], "run": "tests.echo"}})
    manager.fire("b", {"m": 1})
    manager.fire("a", {"n": 2})
    manager.fire("b", {"m": 2})
    storage = manager.storage
    assert storage["t#0"].status == "unstarted"
    assert manager.explain("t").root_causes == ["trigger 'c' never fired"]
    manager.fire("c")
    assert storage["t#0"].kwargs == {"a": {"n": 1}, "b": {"m": 1}, "c": {}}
    assert list(storage.instances) == ["t#0"]


def test_an_unless_added_after_it_fired_abandons_what_waits_and_downstream(
        manager: TriggerManager) -> None:
    manager.update_configuration({
        "t": {"after": ["a", "b"], "run": "tests.echo"},
        "pages": {"after": ["a", "b"], "andEvery": "p", "run": "tests.echo"},
        "down": {"after": ["t"], "run": "tests.echo"},
    })
    manager.fire("a", {"n": 1})
    manager.fire("p", {"k": 1})
    manager.fire("stop")
    manager.update_configuration({
        "t": {"after": ["a", "b"], "unless": ["stop"], "run": "tests.echo"},
        "pages": {"after": ["a", "b"], "andEvery": "p", "unless": ["stop"], "run": "tests.echo"},
    })
    storage = manager.storage
    assert storage["t#0"].metadata["abandoned"] == {"unless": "stop"}
    assert storage["t#0"].kwargs == {"a": {"n": 1}}
    assert storage["down#0"].metadata["abandoned"] == {"unless": "stop", "upstream": "t#0"}
    assert storage["pages#0"].status == "abandoned"
    manager.fire("p", {"k": 2})
    assert storage["pages#1"].status == "abandoned"
    assert storage.is_finalized


# -- statuses set by hand on waiting and vacant instances -----------------------------------------


def test_statuses_set_by_hand_on_waiting_and_vacant_instances(
        manager: TriggerManager, held: type[HoldingRunner]) -> None:
    manager.update_configuration({
        "pages": {"after": ["a", "b"], "andEvery": "p", "run": "tests.echo", "using": "held",
                  "withParams": {"cfg": {"v": 1}}},
        "one": {"after": ["a", "b"], "run": "tests.echo"},
        "down": {"after": ["one"], "run": "tests.echo"},
        "flaky": {"after": ["a", "b"], "run": "tests.echo"},
    })
    manager.fire("a", {"n": 1})
    storage = manager.storage
    scheduled = manager.update_instance_status("pages#0", "scheduled")  # the vacant one
    assert scheduled.kwargs == {"a": {"n": 1}, "cfg": {"v": 1}}
    assert held.names() == ["pages#0"]
    manager.fire("p", {"k": 1})  # #0 is no longer vacant: a new instance takes it
    assert (storage["pages#1"].status, storage["pages#1"].kwargs) == (
        "unstarted", {"a": {"n": 1}, "p": {"k": 1}})

    manager.update_instance_status("one#0", "abandoned")
    assert storage["one#0"].kwargs == {"a": {"n": 1}}
    assert storage["down#0"].metadata["abandoned"] == {"upstream": "one#0"}
    assert manager.explain("one").state == "abandoned"  # not "waiting" for b: it never runs
    assert manager.explain("down").state == "blocked"
    assert manager.explain("down").root_causes == [
        "one#0: abandoned", "down#0: abandoned: it waited for one#0, which was abandoned"]

    manager.update_instance_status("flaky#0", "failed")
    copy = manager.replay_failed_instance("flaky#0")
    assert (copy.name, storage[copy.name].kwargs) == ("flaky#1", {"a": {"n": 1}})
    manager.fire("b", {"m": 1})
    assert storage["pages#1"].status == "scheduled"
    assert storage["pages#1"].kwargs == {"a": {"n": 1}, "p": {"k": 1}, "b": {"m": 1},
                                         "cfg": {"v": 1}}
    assert sorted(storage.instances) == ["down#0", "flaky#0", "flaky#1", "one#0", "pages#0",
                                         "pages#1"], "one-shot tasks gained nothing"
    held.release()
    assert storage.get_unresolved_instances() == []
    assert storage.is_finalized


def test_a_vacant_instance_vetoed_keeps_the_firing_it_took(manager: TriggerManager) -> None:
    manager.update_configuration({"pages": {"after": ["a", "b"], "andEvery": "p",
                                            "unless": ["stop"], "run": "tests.echo"}})
    manager.fire("a", {"n": 1})
    manager.fire("p", {"k": 1})  # taken by the vacant #0
    manager.fire("p", {"k": 2})
    manager.fire("stop")
    manager.fire("p", {"k": 3})
    manager.fire("b")
    pages = manager.storage.instances_of_task("pages")
    assert [(i.status.value, i.kwargs.get("p")) for i in pages] == [
        ("abandoned", {"k": 1}), ("abandoned", {"k": 2}), ("abandoned", {"k": 3})]
    why = manager.explain("pages")
    assert (why.state, why.waiting_firings) == ("vetoed", 0)


# -- a fan-in of 2,000 triggers ------------------------------------------------------------------


def test_a_fan_in_of_two_thousand_triggers_stays_flat_and_keeps_first_firings(
        storage: StorageBackend) -> None:
    manager = TriggerManager(storage)
    fan = [f"f{n}" for n in range(2000)]
    manager.update_configuration({"fan": {"after": fan, "run": "tests.echo"},
                                  "down": {"after": ["fan"], "run": "tests.echo"}})
    first = run_transition(storage, Plan(trigger="f0"), lambda s: s.fire("f0", b'{"n":0}'))
    assert list(first.changes.instances) == ["fan#0"]
    for n in range(1, 1999):
        if n in (1000, 1998):  # a fire deep into the fan-in writes what one near its start does
            later = run_transition(storage, Plan(trigger=f"f{n}"),
                                   lambda s, n=n: s.fire(f"f{n}", b'{"n":%d}' % n))
            assert later.changes.instances == {} and later.changes.states == {}
        else:
            manager.fire(f"f{n}", {"n": n})
    for n in range(0, 1999, 97):
        manager.fire(f"f{n}", {"again": n})
    why = manager.explain("down")
    assert why.root_causes == ["trigger 'f1999' never fired"]
    fan_why = why.after[0].upstream
    assert fan_why is not None and len(fan_why.after) == 2000
    assert sum(fact.fired for fact in fan_why.after) == 1999
    assert all(fact.fired_at for fact in fan_why.after if fact.fired)
    assert len(json.dumps(why.to_json())) < 400_000
    manager.fire("f1999", {"n": 1999})
    assert storage["fan#0"].kwargs == {f"f{n}": {"n": n} for n in range(2000)}
    assert storage["down#0"].status == "finished"
    assert list(storage.instances) == ["fan#0", "down#0"]


# -- the explainer ---------------------------------------------------------------------------------


def test_the_explainer_reaches_the_head_of_a_long_chain(manager: TriggerManager) -> None:
    """The root causes go "down to root causes", however long the chain of cascades: a
    walk cut at some depth must not report a task's name as a trigger that never fired."""
    length = 150
    manager.update_configuration({
        "t0": {"after": ["root"], "run": "tests.noop"},
        **{f"t{k}": {"after": [f"t{k - 1}"], "run": "tests.noop"} for k in range(1, length)}})
    why = manager.explain(f"t{length - 1}")
    assert why.root_causes == ["trigger 'root' never fired"]
    data = json.loads(json.dumps(why.to_json()))
    assert data["root_causes"] == ["trigger 'root' never fired"]
    depth, node = 0, data
    while node["after"] and node["after"][0]["upstream"] is not None:
        node, depth = node["after"][0]["upstream"], depth + 1
    assert depth == NESTED + 1 and node.get("truncated") is True
    manager.fire("root")
    assert manager.storage[f"t{length - 1}#0"].status == "finished"


def test_the_explainer_stays_small_on_a_ladder_of_diamonds(manager: TriggerManager) -> None:
    """Each level waits for both tasks of the level before: 2**40 paths lead to the head.
    The explanation (its root causes, its JSON, the why tree) must not walk each path."""
    levels = 40
    configuration: dict[str, Any] = {"a0": {"after": ["root"], "run": "tests.echo"},
                                     "b0": {"after": ["root"], "run": "tests.echo"}}
    for k in range(1, levels):
        both = [f"a{k - 1}", f"b{k - 1}"]
        configuration[f"a{k}"] = {"after": both, "run": "tests.echo"}
        configuration[f"b{k}"] = {"after": both, "run": "tests.echo"}
    manager.update_configuration(configuration)
    started = time.monotonic()
    why = manager.explain(f"a{levels - 1}")
    assert why.root_causes == ["trigger 'root' never fired"]
    text = json.dumps(why.to_json())
    assert time.monotonic() - started < 10
    assert len(text) < 200_000 and '"repeated": true' in text


HOSTILE_NAMES = ["a#b", "a b", "t#0", "#", "x#", "a#b#c", "ünï©ødé ✓ #1", "[bold]m[/bold]",
                 "a[/]b", "n" * 3000, "tab\tand\nnewline"]


def test_explaining_tasks_with_hostile_names(manager: TriggerManager) -> None:
    configuration = {name: {"after": [f"{name}|trigger", f"#{n}"], "run": "tests.echo"}
                     for n, name in enumerate(HOSTILE_NAMES)}
    configuration["down"] = {"after": HOSTILE_NAMES, "run": "tests.echo"}
    manager.update_configuration(configuration)
    manager.fire("#0")
    manager.fire("a#b|trigger")
    for name in HOSTILE_NAMES:
        manager.fire(f"{name}|trigger", {"name": name})
        why = manager.explain(name)
        assert why.task == name and why.state in ("waiting", "finished")
        json.dumps(why.to_json())
        [instance] = manager.storage.instances_of_task(name)
        assert manager.explain(instance.name).instance == instance.name
    why = manager.explain("down")
    assert why.root_causes == [f"trigger '#{n}' never fired" for n in range(1, len(HOSTILE_NAMES))]
    for unknown in ("nope", "nope#3", "a#b#1", "t#0#7", "a b#x"):
        with pytest.raises(InstanceNotFoundError):
            manager.explain(unknown)


def test_the_explainer_on_an_and_every_backlog_and_on_work_waiting_for_runners(
        manager: TriggerManager, held: type[HoldingRunner]) -> None:
    manager.update_configuration({
        "pages": {"after": ["open"], "andEvery": "page", "run": "tests.echo", "using": "held"},
        "report": {"after": ["pages", "done"], "run": "tests.echo"},
    })
    for k in range(60):
        manager.fire("page", {"k": k})
    why = manager.explain("pages")
    assert (why.state, why.waiting_firings) == ("waiting", 60)
    assert "60 andEvery firing(s) wait" in why.summary
    assert len(why.instances) <= 21
    assert why.root_causes == ["trigger 'open' never fired"]
    manager.fire("open")
    report = manager.explain("report")  # (pages got its firings: not waiting for one)
    pages = report.after[0].upstream
    assert pages is not None and pages.state == "scheduled" and pages.waiting_firings == 0
    assert {fact.runner for fact in pages.instances} == {"held"}
    assert all("not claimed yet by runner 'held'" in cause
               for cause in report.root_causes if cause.startswith("pages#"))
    assert report.root_causes[-1] == "trigger 'done' never fired"
    held.release()
    assert manager.explain("pages").state == "finished"


def test_the_explainer_names_the_and_every_trigger_a_task_waits_for(
        manager: TriggerManager) -> None:
    manager.update_configuration({"pages": {"after": ["open"], "andEvery": "page",
                                            "run": "tests.echo"},
                                  "report": {"after": ["pages"], "run": "tests.echo"}})
    manager.fire("open")
    # Not "trigger 'pages' never fired": pages is a task, and it waits for a page.
    assert manager.explain("report").root_causes == [
        "pages: waits for a firing of its andEvery trigger 'page'"]
    manager.fire("page")
    assert manager.storage["report#0"].status == "finished"


def test_the_explainer_on_a_running_instance_names_its_worker_and_lease(
        storage: StorageBackend) -> None:
    manager = TriggerManager(storage, task_runner="threading", lease_seconds=30)
    manager.update_configuration({"slow": {"after": ["go"], "run": "hostile.blocking"},
                                  "next": {"after": ["slow"], "run": "tests.echo"}})
    _RELEASE.clear()
    try:
        manager.fire("go")
        wait_for(lambda: storage["slow#0"].status == "running", 10, "slow#0 to run")
        why = manager.explain("next")
        slow = why.after[0].upstream
        assert slow is not None and slow.state == "running"
        [fact] = slow.instances
        assert fact.worker and fact.lease_until and fact.since
        assert why.root_causes == [f"slow#0: {fact.detail}"]
        assert "lease holds until" in fact.detail and fact.worker in fact.detail
    finally:
        _RELEASE.set()
        ThreadingTaskRunner.join_all(timeout=30)
    assert storage["next#0"].status == "finished"


def test_the_explainer_reads_only_the_tasks_on_its_path_through_a_diamond(
        storage: StorageBackend) -> None:
    manager = TriggerManager(storage)
    manager.update_configuration({
        **{f"noise{n}": {"after": [f"z{n}", "top"], "run": "tests.echo"} for n in range(100)},
        "head": {"after": ["root"], "run": "tests.echo"},
        "left": {"after": ["head", "l"], "run": "tests.echo"},
        "right": {"after": ["head"], "andEvery": "r", "run": "tests.echo"},
        "top": {"after": ["left", "right"], "run": "tests.echo"}})
    manager.fire("l")
    read: list[str] = []

    def body(step: Any) -> Any:
        from triggerhooks.core.explain import explain
        view = step.view
        original = view.task

        def task(name: str) -> Any:
            read.append(name)
            return original(name)
        view.task = task
        return explain(view, "top", step.now, "inline")

    found = run_transition(storage, Plan(), body).changes.result
    assert set(read) <= {"top", "left", "right", "head", "root", "l", "r"}
    assert found.root_causes == ["trigger 'root' never fired"]


def test_the_explainer_changes_nothing_even_where_a_recovery_would(
        storage: StorageBackend) -> None:
    manager = TriggerManager(storage)
    manager.update_configuration({"t": {"after": ["a", "b"], "run": "tests.echo"}})
    manager.fire("a")
    record_only(storage, "b", b'{"late":true}')  # a process died before the rules ran
    before = storage.debug_repr()
    assert manager.explain("t").state == "ready"
    assert manager.explain("t").root_causes == ["t: every trigger fired: a recovery schedules it"]
    assert storage.debug_repr() == before


# -- recovery of what a process killed between a firing and its follow-up left --------------------


def test_a_recovery_completes_firings_whose_follow_up_was_lost(storage: StorageBackend) -> None:
    manager = TriggerManager(storage)
    manager.update_configuration({
        "fan": {"after": ["a", "b", "c"], "run": "tests.echo"},
        "up": {"after": ["go"], "unless": ["stop"], "run": "tests.echo"},
        "down": {"after": ["up", "x"], "run": "tests.echo"},
        "per_up": {"after": [], "andEvery": "up", "run": "tests.echo"},
        "late": {"after": ["z", "zz"], "run": "tests.echo"},
        "final": {"after": ["sessionFinalized"], "run": "tests.echo"},
    })
    manager.fire("x", {"x": 1})
    record_only(storage, "a", b'{"first":"a"}')  # the first firing fan sees: no instance yet
    manager.fire("b", {"first": "b"})
    record_only(storage, "c", b'{"first":"c"}')  # the last one: fan is ready, not scheduled
    record_only(storage, "stop")  # the veto: nothing abandoned yet
    record_only(storage, "z", b'{"z":1}')
    assert "late#0" not in storage
    assert storage["fan#0"].status == "unstarted"
    done = manager.recover()
    assert {(entry.action, entry.instance) for entry in done} >= {
        ("scheduled", "fan#0"), ("abandoned", "up#0"), ("abandoned", "down#0"),
        ("abandoned", "per_up#0")}
    assert storage["fan#0"].kwargs == {"a": {"first": "a"}, "b": {"first": "b"},
                                       "c": {"first": "c"}}
    assert storage["down#0"].metadata["abandoned"] == {"unless": "stop", "upstream": "up#0"}
    assert (storage["late#0"].status, storage["late#0"].kwargs) == ("unstarted", {"z": {"z": 1}})
    manager.fire("zz")
    assert storage.is_finalized and storage["final#0"].status == "finished"
    assert manager.recover() == []


# -- Redis: writers side by side ------------------------------------------------------------------


def test_an_and_every_firing_racing_the_block_of_its_task_is_abandoned_on_redis(
        redis_prefix: str) -> None:
    """Two processes (two clients, each with its own cache of the session): one blocks a
    task (its upstream was vetoed) while the other, knowing the task unblocked, fires its
    andEvery trigger. The firing's instance must be abandoned, not left waiting forever in a
    task that can never run (the session even finalized around it)."""
    prefix, uid = f"{redis_prefix}-race", f"race-{uuid.uuid4().hex[:8]}"
    one = TriggerManager(RedisStorageBackend(uid, REDIS_URL, prefix=prefix))
    other = TriggerManager(RedisStorageBackend(uid, REDIS_URL.replace("127.0.0.1", "localhost"),
                                               prefix=prefix))
    try:
        one.update_configuration({
            "up": {"after": ["go"], "unless": ["stop"], "run": "tests.echo"},
            "down": {"after": ["up"], "andEvery": "tick", "run": "tests.echo"}})
        one.fire("tick", {"k": 0})
        other.fire("stop")
        one.fire("tick", {"k": 1})  # decided on what `one` knew: down not blocked
        storage = other.storage
        assert _statuses(storage) == {"up#0": "abandoned", "down#0": "abandoned",
                                      "down#1": "abandoned"}
        assert storage["down#1"].kwargs == {"tick": {"k": 1}}
        assert storage.is_finalized
        # The same with a vacant #0, which a firing of the andEvery trigger takes.
        one.update_configuration({
            "up2": {"after": ["go"], "unless": ["stop2"], "run": "tests.echo"},
            "down2": {"after": ["up2", "x"], "andEvery": "tock", "run": "tests.echo"}})
        one.fire("x")
        other.fire("stop2")
        one.fire("tock", {"k": 1})
        assert [(i.name, i.status.value) for i in storage.instances_of_task("down2")] == [
            ("down2#0", "abandoned"), ("down2#1", "abandoned")]
    finally:
        one.storage.clear()


# -- the command line --------------------------------------------------------------------------------


@pytest.fixture
def cli_session(tmp_path: Path) -> Iterator[tuple[str, TriggerManager]]:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    yield url, TriggerManager(open_storage(url, "s-hostile"))


def _invoke(url: str, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--storage", url, *args])


def test_why_and_show_print_names_as_they_are_never_as_markup(
        cli_session: tuple[str, TriggerManager]) -> None:
    url, manager = cli_session
    manager.update_configuration({
        "[bold]t[/bold]": {"after": ["[red]trig[/red]", "a b"], "run": "tests.echo"},
        "d#x": {"after": ["[bold]t[/bold]"], "run": "tests.echo"},
        "t#0": {"after": ["zz"], "run": "tests.echo"},
    })
    manager.fire("a b")
    result = _invoke(url, "why", "s-hostile", "d#x")
    assert result.exit_code == 0, result.output
    assert "• trigger '[red]trig[/red]' never fired" in result.output
    assert "\\[" not in result.output
    result = _invoke(url, "show", "s-hostile")
    assert result.exit_code == 0, result.output
    assert "[red]trig[/red]" in result.output and "[bold]t[/bold]#0" in result.output
    assert "after [bold]t[/bold]" in result.output
    assert _invoke(url, "why", "s-hostile", "t#0").exit_code == 0
    manager.update_instance_status("[bold]t[/bold]#0", "abandoned")  # by hand, while it waited
    result = _invoke(url, "show", "s-hostile")
    [row] = [line for line in result.output.splitlines() if line.startswith("[bold]t[/bold] ")]
    assert "nothing: abandoned" in row and row.count("[red]trig[/red]") == 1  # not waiting for it
    [row] = [line for line in result.output.splitlines() if line.startswith("d#x ")]
    assert "nothing: blocked" in row
    for unknown in ("nope", "nope#3", "t#1"):
        result = _invoke(url, "why", "s-hostile", unknown)
        assert result.exit_code == 1 and result.output.startswith("error:")


def test_why_prints_a_ladder_of_diamonds_once_per_task(
        cli_session: tuple[str, TriggerManager]) -> None:
    url, manager = cli_session
    configuration: dict[str, Any] = {"a0": {"after": ["root"], "run": "tests.echo"},
                                     "b0": {"after": ["root"], "run": "tests.echo"}}
    for k in range(1, 30):
        both = [f"a{k - 1}", f"b{k - 1}"]
        configuration[f"a{k}"] = {"after": both, "run": "tests.echo"}
        configuration[f"b{k}"] = {"after": both, "run": "tests.echo"}
    manager.update_configuration(configuration)
    result = _invoke(url, "why", "s-hostile", "a29")  # 80 columns: ten levels fit
    assert result.exit_code == 0
    assert result.output.count("explained in another branch") < 50
    assert "deeper: see the root causes" in result.output
    assert result.output.endswith("root causes:\n  • trigger 'root' never fired\n")
    assert max(map(len, result.output.splitlines())) <= 80
    result = _invoke(url, "why", "s-hostile", "a29", "--json")
    assert json.loads(result.output)["root_causes"] == ["trigger 'root' never fired"]


def test_resolve_logs_prints_an_instance_name_that_looks_like_markup(
        cli_session: tuple[str, TriggerManager]) -> None:
    url, manager = cli_session
    manager.update_configuration({"a[/]b": {"after": ["go"], "run": "tests.boom"}})
    manager.fire("go")
    result = _invoke(url, "resolve-logs", "s-hostile", "a[/]b#0")
    assert manager.storage["a[/]b#0"].logs_resolved
    assert result.exit_code == 0, result.output
