"""Waiting instances, abandonment that reaches downstream, and the explainer, on every backend."""

from __future__ import annotations

import json

import pytest

from triggerhooks import TriggerManager
from triggerhooks.core.types import Plan
from triggerhooks.exceptions import InstanceNotFoundError
from triggerhooks.storages import StorageBackend
from triggerhooks.testing import HoldingRunner
from triggerhooks.testing.transitions import run_transition

# -- waiting instances -----------------------------------------------------------------------------


def test_a_task_part_way_is_listed_everywhere_with_what_fired(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a", "b", "c"], "run": "tests.echo"}})
    manager.fire("b", {"n": 1})
    manager.fire("a", {"m": 1})
    storage = manager.storage
    waiting = storage["t#0"]
    assert (waiting.status, waiting.kwargs) == ("unstarted", {"b": {"n": 1}, "a": {"m": 1}})
    assert waiting.metadata["timestamps"].keys() == {"unstarted"}
    assert list(storage.instances) == ["t#0"] and [i.name for i in storage] == ["t#0"]
    assert storage.instances_of_task("t") == [waiting]
    assert storage.get_unresolved_instances() == [waiting]
    assert len(storage) == 1 and "t#0" in storage
    assert storage.debug_repr()["instances"]["t#0"]["kwargs"] == waiting.kwargs


def test_a_fire_writes_no_waiting_instance_it_does_not_create(storage: StorageBackend) -> None:
    """The first firing a task sees creates its instance; later ones, however many triggers
    the task waits for, write nothing but the firing (a reader applies them)."""
    manager = TriggerManager(storage)
    manager.update_configuration({"fan": {"after": [f"x{n}" for n in range(30)],
                                          "run": "tests.echo"}})
    first = run_transition(storage, Plan(trigger="x0"), lambda s: s.fire("x0", b'{"n":0}'))
    assert list(first.changes.instances) == ["fan#0"]
    for n in range(1, 29):
        later = run_transition(storage, Plan(trigger=f"x{n}"),
                               lambda s, n=n: s.fire(f"x{n}", b'{"n":%d}' % n))
        assert later.changes.instances == {} and later.changes.states == {}
    again = run_transition(storage, Plan(trigger="x3"), lambda s: s.fire("x3", b'{"n":99}'))
    assert again.changes.instances == {} and again.changes.new_triggers == []
    assert storage["fan#0"].kwargs == {f"x{n}": {"n": n} for n in range(29)}
    manager.fire("x29", {"n": 29})
    assert storage["fan#0"].status == "finished"
    assert storage["fan#0"].kwargs == {f"x{n}": {"n": n} for n in range(30)}


def test_a_one_shot_task_runs_once_after_waiting(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a", "b"], "unless": ["never"],
                                        "run": "tests.echo"}})
    manager.fire("never-mind")
    manager.fire("a")
    manager.fire("b")
    manager.fire("a", {"again": True})
    manager.fire("b", {"again": True})
    assert [(i.name, i.status) for i in manager.storage] == [("t#0", "finished")]


def test_a_waiting_instance_can_be_set_by_hand(manager: TriggerManager,
                                               held: type[HoldingRunner]) -> None:
    manager.update_configuration({
        "t": {"after": ["a", "b"], "run": "tests.echo", "using": "held",
              "withParams": {"p": {"q": 1}}},
        "u": {"after": ["a", "c"], "run": "tests.echo"}})
    manager.fire("a", {"n": 1})
    scheduled = manager.update_instance_status("t#0", "scheduled")
    assert scheduled.kwargs == {"a": {"n": 1}, "p": {"q": 1}}
    assert held.names() == ["t#0"]
    finished = manager.update_instance_status("u#0", "finished", cascade=True,
                                              cascade_kwargs={"by": "hand"})
    assert finished.metadata["result"] == {"by": "hand"}
    manager.fire("b")
    manager.fire("c")  # each task ran (or was settled) once: nothing new
    assert sorted(i.name for i in manager.storage) == ["t#0", "u#0"]


def test_the_and_every_backlog_waits_and_a_vacant_instance_takes_the_next_firing(
        manager: TriggerManager) -> None:
    manager.update_configuration({"pages": {"after": ["start", "ready"], "andEvery": "page",
                                            "run": "tests.echo"}})
    manager.fire("start", {"s": 1})  # the first firing pages sees: a vacant #0
    first = manager.storage["pages#0"]
    assert (first.status, first.kwargs) == ("unstarted", {"start": {"s": 1}})
    manager.fire("page", {"n": 0})  # taken by #0
    manager.fire("page", {"n": 1})  # #1, with what fired so far
    manager.fire("page", {"n": 2})
    storage = manager.storage
    assert [(i.name, i.kwargs) for i in storage.instances_of_task("pages")] == [
        ("pages#0", {"start": {"s": 1}, "page": {"n": 0}}),
        ("pages#1", {"start": {"s": 1}, "page": {"n": 1}}),
        ("pages#2", {"start": {"s": 1}, "page": {"n": 2}})]
    assert manager.explain("pages").waiting_firings == 3
    manager.fire("ready", {"r": 1})
    pages = storage.instances_of_task("pages")
    assert [i.status for i in pages] == ["finished"] * 3
    assert all(i.kwargs["ready"] == {"r": 1} for i in pages)
    assert storage.is_finalized


def test_unless_before_any_after_trigger(manager: TriggerManager) -> None:
    manager.update_configuration({
        "t": {"after": ["a"], "unless": ["stop"], "run": "tests.echo"},
        "pages": {"after": ["a"], "andEvery": "page", "unless": ["stop"], "run": "tests.echo"}})
    manager.fire("stop")
    storage = manager.storage
    for name in ("t#0", "pages#0"):
        assert storage[name].status == "abandoned"
        assert storage[name].metadata["abandoned"] == {"unless": "stop"}
    assert storage.is_finalized
    manager.fire("a")
    manager.fire("page", {"n": 1})
    assert [(i.name, i.status) for i in storage.instances_of_task("pages")] == [
        ("pages#0", "abandoned"), ("pages#1", "abandoned")]
    assert storage["pages#1"].kwargs == {"page": {"n": 1}}
    assert storage.instances_of_task("t") == [storage["t#0"]]


# -- abandonment reaches downstream --------------------------------------------------------------


def test_a_vetoed_head_of_a_three_level_chain_lets_the_session_finalize(
        manager: TriggerManager) -> None:
    manager.update_configuration({
        "first": {"after": ["go"], "unless": ["cancel"], "run": "tests.echo"},
        "second": {"after": ["first", "extra"], "run": "tests.echo"},
        "third": {"after": ["second"], "andEvery": "tick", "run": "tests.echo"},
        "other": {"after": ["go"], "run": "tests.echo"},
    })
    manager.fire("extra", {"e": 1})
    manager.fire("tick", {"k": 1})
    manager.fire("cancel")
    storage = manager.storage
    assert storage["first#0"].metadata["abandoned"] == {"unless": "cancel"}
    second, third = storage["second#0"], storage["third#0"]
    assert (second.status, second.kwargs) == ("abandoned", {"extra": {"e": 1}})
    assert second.metadata["abandoned"] == {"unless": "cancel", "upstream": "first#0"}
    assert (third.status, third.metadata["abandoned"]) == (
        "abandoned", {"unless": "cancel", "upstream": "second#0"})
    assert not storage.is_finalized  # other waits for go
    manager.fire("tick", {"k": 2})  # third can never run: the firing is recorded, abandoned
    assert storage["third#1"].status == "abandoned"
    manager.fire("go")
    assert storage["other#0"].status == "finished"
    assert storage.is_finalized
    why = manager.explain("third")
    assert why.state == "blocked"
    assert any(cause.endswith("abandoned: it waited for second#0, which was abandoned; unless "
                              "trigger 'cancel' fired") for cause in why.root_causes)


def test_an_instance_abandoned_by_hand_reaches_downstream(manager: TriggerManager,
                                                          held: type[HoldingRunner]) -> None:
    manager.update_configuration({
        "up": {"after": ["go"], "run": "tests.echo", "using": "held"},
        "down": {"after": ["up"], "run": "tests.echo"},
        "side": {"after": ["go"], "run": "tests.echo", "using": "held"},
        "both": {"after": ["side", "up"], "run": "tests.echo"},
    })
    manager.fire("go")
    manager.update_instance_status("up#0", "abandoned")
    for name in ("down#0", "both#0"):
        assert manager.storage[name].metadata["abandoned"] == {"upstream": "up#0"}
    held.release()
    assert manager.storage.is_finalized


def test_a_task_that_may_still_finish_is_no_reason_to_abandon(
        manager: TriggerManager, held: type[HoldingRunner]) -> None:
    """A failed upstream may be replayed, an andEvery one may get more firings: what waits
    for them keeps waiting."""
    manager.update_configuration({
        "flaky": {"after": ["go"], "run": "tests.boom"},
        "after_flaky": {"after": ["flaky"], "run": "tests.echo"},
        "pages": {"after": ["go"], "andEvery": "page", "run": "tests.echo", "using": "held"},
        "after_pages": {"after": ["pages", "x"], "run": "tests.echo"},
    })
    manager.fire("x")
    manager.fire("go")
    manager.fire("page")
    manager.update_instance_status("pages#0", "abandoned")
    assert manager.storage["after_pages#0"].status == "unstarted"
    assert "after_flaky#0" not in manager.storage
    assert manager.storage["flaky#0"].status == "failed"


# -- the explainer -------------------------------------------------------------------------------


def test_the_explainer_finds_a_failed_upstream_two_levels_down(manager: TriggerManager) -> None:
    manager.update_configuration({
        "fetch": {"after": ["start"], "run": "tests.boom"},
        "score": {"after": ["fetch", "answers"], "run": "tests.echo"},
        "report": {"after": ["score", "consent"], "run": "tests.echo"},
    })
    manager.fire("start")
    manager.fire("consent", {"yes": True})
    found = manager.explain("report")
    assert (found.task, found.state) == ("report", "waiting")
    by_trigger = {fact.trigger: fact for fact in found.after}
    assert by_trigger["consent"].fired and by_trigger["consent"].fired_at
    assert not by_trigger["score"].fired
    score = by_trigger["score"].upstream
    assert score is not None and score.state == "waiting"
    fetch = {fact.trigger: fact for fact in score.after}["fetch"].upstream
    assert fetch is not None and fetch.state == "failed"
    assert fetch.instances[0].exception_type == "ValueError"
    assert found.root_causes == ["fetch#0: failed with ValueError: replay or skip it",
                                 "trigger 'answers' never fired"]
    data = json.loads(json.dumps(found.to_json()))
    assert data["root_causes"] == found.root_causes
    assert data["after"][0]["upstream"]["task"] == "score"
    assert manager.explain("report#0").instance == "report#0"


def test_the_explainer_names_the_runner_and_the_worker(manager: TriggerManager,
                                                       held: type[HoldingRunner]) -> None:
    manager.update_configuration({"t": {"after": ["go"], "run": "tests.echo", "using": "held"},
                                  "u": {"after": ["t"], "run": "tests.echo"}})
    manager.fire("go")
    found = manager.explain("u")
    upstream = found.after[0].upstream
    assert upstream is not None and upstream.state == "scheduled"
    assert upstream.instances[0].runner == "held"
    assert "not claimed yet by runner 'held'" in found.root_causes[0]


def test_the_explainer_reads_only_the_path_it_walks(storage: StorageBackend) -> None:
    manager = TriggerManager(storage)
    manager.update_configuration({
        **{f"noise{n}": {"after": [f"z{n}"], "run": "tests.echo"} for n in range(50)},
        "t": {"after": ["a"], "run": "tests.echo"}})
    read: list[str] = []

    def body(step: object) -> object:
        from triggerhooks.core.explain import explain
        from triggerhooks.core.rules import Transition
        assert isinstance(step, Transition)
        view = step.view
        original = view.task

        def task(name: str) -> object:
            read.append(name)
            return original(name)
        view.task = task  # type: ignore[method-assign, assignment]
        return explain(view, "t", step.now, "inline")

    run_transition(storage, Plan(), body)
    assert set(read) <= {"t", "a"}


def test_explaining_an_unknown_task_is_an_error(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.echo"}})
    with pytest.raises(InstanceNotFoundError, match="no task named 'nope'"):
        manager.explain("nope")
    with pytest.raises(InstanceNotFoundError, match="t#7"):
        manager.explain("t#7")
    for hostile in ("", "\udc80", "t#x#", "#"):
        with pytest.raises(InstanceNotFoundError):
            manager.explain(hostile)
