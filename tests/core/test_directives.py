"""The configuration directives: after, andEvery, unless, withParams, using, run, extras."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.helpers import settle
from triggerhooks import TaskConfig, TriggerManager, trigger_task
from triggerhooks.storages import StorageBackend
from triggerhooks.task import TaskContext
from triggerhooks.testing import HoldingRunner

# -- after ---------------------------------------------------------------------------------


@pytest.mark.parametrize("order", list(itertools.permutations(["a", "b", "c"])))
def test_after_waits_for_every_trigger_in_any_order(any_manager: TriggerManager,
                                                    order: tuple[str, ...]) -> None:
    any_manager.update_configuration({"t": {"after": ["a", "b", "c"], "run": "tests.echo"}})
    for fired, trigger in enumerate(order, start=1):
        any_manager.fire(trigger, {"name": trigger})
        settle()
        if fired < 3:  # waiting from the first firing on, holding what fired so far
            waiting = any_manager.storage["t#0"]
            assert waiting.status == "unstarted"
            assert waiting.kwargs == {t: {"name": t} for t in order[:fired]}
    instance = any_manager.storage["t#0"]
    assert instance.status == "finished"
    assert instance.kwargs == {t: {"name": t} for t in "abc"}


def test_a_waiting_instance_keeps_the_first_firing_of_each_trigger(
        any_manager: TriggerManager) -> None:
    any_manager.update_configuration({"t": {"after": ["a", "b", "c"], "run": "tests.echo"}})
    any_manager.fire("a", {"n": 1})
    any_manager.fire("a", {"n": 2})
    any_manager.fire("b", {"m": 1})
    any_manager.fire("b", {"m": 2})
    assert any_manager.storage["t#0"].kwargs == {"a": {"n": 1}, "b": {"m": 1}}
    assert any_manager.storage.latest_kwargs == {"a": {"n": 2}, "b": {"m": 2}}
    any_manager.fire("c")
    settle()
    assert any_manager.storage["t#0"].metadata["result"] == {
        "received": {"a": {"n": 1}, "b": {"m": 1}, "c": {}}}


def test_a_task_without_and_every_runs_once_however_often_its_triggers_fire(
        any_manager: TriggerManager) -> None:
    any_manager.update_configuration({"t": {"after": ["a"], "run": "tests.echo"}})
    for n in range(3):
        any_manager.fire("a", {"n": n})
        settle()
    assert list(any_manager.storage.instances) == ["t#0"]
    assert any_manager.storage["t#0"].kwargs == {"a": {"n": 0}}


def test_firing_an_unrelated_trigger_changes_no_task(any_manager: TriggerManager) -> None:
    any_manager.update_configuration({"t": {"after": ["a"], "run": "tests.echo"}})
    any_manager.fire("zzz", {"x": 1})
    settle()
    assert any_manager.storage.instances == {}
    assert any_manager.storage.latest_kwargs == {"zzz": {"x": 1}}


def test_a_task_name_in_after_waits_for_that_tasks_result(any_manager: TriggerManager) -> None:
    any_manager.update_configuration({
        "t1": {"after": ["a"], "run": "tests.echo"},
        "t2": {"after": ["t1", "b"], "run": "tests.echo"},
    })
    any_manager.fire("a", {"x": 1})
    settle()
    waiting = any_manager.storage["t2#0"]  # t1's name fired: t2 waits for b
    assert (waiting.status, waiting.kwargs) == ("unstarted", {"t1": {"received": {"a": {"x": 1}}}})
    any_manager.fire("b")
    settle()
    t2 = any_manager.storage["t2#0"]
    assert t2.status == "finished"
    assert t2.kwargs == {"t1": {"received": {"a": {"x": 1}}}, "b": {}}
    assert any_manager.storage.latest_kwargs["t1"] == {"received": {"a": {"x": 1}}}


def test_cascades_chain_through_several_tasks(any_manager: TriggerManager) -> None:
    any_manager.update_configuration({
        "t1": {"after": ["start"], "run": "tests.noop"},
        "t2": {"after": ["t1"], "run": "tests.noop"},
        "t3": {"after": ["t2"], "run": "tests.echo"},
    })
    any_manager.fire("start")
    settle()
    assert [i.status for i in any_manager.storage] == ["finished"] * 3
    assert any_manager.storage["t3#0"].kwargs == {"t2": {}}


def test_a_failed_task_does_not_cascade(any_manager: TriggerManager) -> None:
    any_manager.update_configuration({
        "t1": {"after": ["a"], "run": "tests.boom"},
        "t2": {"after": ["t1"], "run": "tests.echo"},
    })
    any_manager.fire("a")
    settle()
    assert any_manager.storage["t1#0"].status == "failed"
    assert "t2#0" not in any_manager.storage
    assert "t1" not in any_manager.storage.latest_kwargs


# -- andEvery ------------------------------------------------------------------------------


def test_and_every_creates_one_instance_per_firing(any_manager: TriggerManager) -> None:
    any_manager.update_configuration({"t": {"andEvery": "page", "run": "tests.echo"}})
    for n in range(3):
        any_manager.fire("page", {"n": n})
        settle()
    instances = any_manager.storage.instances_of_task("t")
    assert [i.name for i in instances] == ["t#0", "t#1", "t#2"]
    assert [i.kwargs for i in instances] == [{"page": {"n": n}} for n in range(3)]
    assert all(i.status == "finished" for i in instances)


def test_and_every_instances_wait_for_after_then_run_as_a_backlog(
        any_manager: TriggerManager) -> None:
    any_manager.update_configuration({
        "t_subject": {"after": ["first", "complete"], "run": "tests.echo"},
        "t_pages": {"after": ["t_subject"], "andEvery": "page", "run": "tests.echo"},
    })
    any_manager.fire("page", {"n": 0})
    any_manager.fire("first")
    any_manager.fire("page", {"n": 1})
    settle()
    backlog = any_manager.storage.instances_of_task("t_pages")
    assert [(i.name, i.status) for i in backlog] == [("t_pages#0", "unstarted"),
                                                     ("t_pages#1", "unstarted")]
    assert all(i.can_run for i in backlog)

    any_manager.fire("complete")
    settle()
    instances = any_manager.storage.instances_of_task("t_pages")
    assert [i.status for i in instances] == ["finished", "finished"]
    subject = {"received": {"first": {}, "complete": {}}}
    assert [i.kwargs for i in instances] == [
        {"t_subject": subject, "page": {"n": 0}},
        {"t_subject": subject, "page": {"n": 1}},
    ]

    any_manager.fire("page", {"n": 2})  # after is complete now: runs at once
    settle()
    latest = any_manager.storage["t_pages#2"]
    assert latest.status == "finished"
    assert latest.kwargs == {"t_subject": subject, "page": {"n": 2}}


def test_and_every_listed_in_after_too_is_not_waited_for_twice(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["page", "a"], "andEvery": "page",
                                        "run": "tests.echo"}})
    manager.fire("page", {"n": 0})
    assert manager.storage["t#0"].status == "unstarted"
    manager.fire("a")
    assert manager.storage["t#0"].status == "finished"
    assert manager.storage["t#0"].kwargs == {"page": {"n": 0}, "a": {}}


def test_and_every_on_a_task_name_runs_once_per_upstream_instance(
        any_manager: TriggerManager) -> None:
    any_manager.update_configuration({
        "t_pages": {"andEvery": "page", "run": "tests.echo"},
        "t_each": {"andEvery": "t_pages", "run": "tests.echo"},
        "t_once": {"after": ["t_pages"], "run": "tests.noop"},
    })
    for n in range(3):
        any_manager.fire("page", {"n": n})
        settle()
    each = any_manager.storage.instances_of_task("t_each")
    assert [i.kwargs["t_pages"]["received"] for i in each] == [{"page": {"n": n}} for n in range(3)]
    assert len(any_manager.storage.instances_of_task("t_once")) == 1


# -- unless --------------------------------------------------------------------------------


def test_unless_before_the_task_ran_abandons_it_for_good(any_manager: TriggerManager) -> None:
    any_manager.update_configuration({"t": {"after": ["a"], "unless": ["embedded"],
                                            "run": "tests.echo"}})
    any_manager.fire("embedded")
    settle()
    instance = any_manager.storage["t#0"]
    assert instance.status == "abandoned"
    assert instance.is_resolved
    any_manager.fire("a")
    settle()
    assert list(any_manager.storage.instances) == ["t#0"]
    assert any_manager.storage["t#0"].status == "abandoned"
    assert any_manager.get_unresolved_tasks() == []


def test_unless_needs_all_of_its_triggers(any_manager: TriggerManager) -> None:
    any_manager.update_configuration({"t": {"after": ["a"], "unless": ["x", "y"],
                                            "run": "tests.echo"}})
    any_manager.fire("x")
    any_manager.fire("a")
    settle()
    assert any_manager.storage["t#0"].status == "finished"
    any_manager.fire("y")
    settle()
    assert any_manager.storage["t#0"].status == "finished"


def test_unless_after_a_run_leaves_finished_instances_alone(any_manager: TriggerManager) -> None:
    any_manager.update_configuration({"t": {"after": ["a"], "unless": ["x"],
                                            "run": "tests.echo"}})
    any_manager.fire("a")
    settle()
    any_manager.fire("x")
    settle()
    assert [(i.name, i.status) for i in any_manager.storage] == [("t#0", "finished")]


def test_unless_abandons_the_and_every_backlog_and_stops_new_instances(
        any_manager: TriggerManager) -> None:
    any_manager.update_configuration({
        "t": {"after": ["ready"], "andEvery": "page", "unless": ["stop"], "run": "tests.echo"},
    })
    any_manager.fire("page", {"n": 0})
    any_manager.fire("page", {"n": 1})
    any_manager.fire("stop")
    settle()
    assert [i.status for i in any_manager.storage.instances_of_task("t")] == ["abandoned"] * 2
    any_manager.fire("ready")
    any_manager.fire("page", {"n": 2})
    settle()
    # Every later firing leaves a record: its instance, abandoned at once.
    third = any_manager.storage["t#2"]
    assert (third.status, third.kwargs) == ("abandoned", {"page": {"n": 2}})
    assert third.metadata["abandoned"] == {"unless": "stop"}
    assert [i.status for i in any_manager.storage.instances_of_task("t")] == ["abandoned"] * 3


def test_unless_abandons_scheduled_instances_that_have_not_started(
        manager: TriggerManager, held: type[HoldingRunner]) -> None:
    manager.update_configuration({"t": {"after": ["a"], "unless": ["x"], "using": "held",
                                        "run": "tests.echo"}})
    manager.fire("a")
    assert manager.storage["t#0"].status == "scheduled"
    manager.fire("x")
    assert manager.storage["t#0"].status == "abandoned"
    assert held.release() == [None]  # the runner's late hand-off runs nothing
    assert manager.storage["t#0"].status == "abandoned"


@trigger_task(name="test_directives.fires_its_own_veto")
def fires_its_own_veto(context: TaskContext) -> dict[str, Any]:
    context.manager.fire("x")
    return {"status_during_run": context.manager.storage["t#0"].status.value}


def test_unless_leaves_a_running_instance_alone(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a"], "unless": ["x"],
                                        "run": "test_directives.fires_its_own_veto"}})
    manager.fire("a")
    assert manager.storage["t#0"].status == "finished"
    assert manager.storage["t#0"].metadata["result"] == {"status_during_run": "running"}


# -- withParams ----------------------------------------------------------------------------


def test_with_params_are_merged_under_the_trigger_kwargs(any_manager: TriggerManager) -> None:
    any_manager.update_configuration({"t": {
        "after": ["a", "b"],
        "withParams": {"a": {"model": "Psych 01", "x": "param"}, "scoring": {"level": 2}},
        "run": "tests.echo",
    }})
    any_manager.fire("a", {"x": "trigger"})
    any_manager.fire("b", {"y": 1})
    settle()
    assert any_manager.storage["t#0"].kwargs == {
        "a": {"model": "Psych 01", "x": "trigger"},  # the trigger's own value wins
        "b": {"y": 1},
        "scoring": {"level": 2},
    }


def test_with_params_reach_every_and_every_instance(any_manager: TriggerManager) -> None:
    any_manager.update_configuration({"t": {"andEvery": "page", "run": "tests.echo",
                                            "withParams": {"page": {"lang": "en"}}}})
    any_manager.fire("page", {"n": 0})
    any_manager.fire("page", {"n": 1, "lang": "de"})
    settle()
    assert [i.kwargs for i in any_manager.storage.instances_of_task("t")] == [
        {"page": {"lang": "en", "n": 0}}, {"page": {"lang": "de", "n": 1}}]


# -- using, run, extras --------------------------------------------------------------------


def test_using_selects_the_runner_of_one_task(manager: TriggerManager,
                                              held: type[HoldingRunner]) -> None:
    manager.update_configuration({
        "t_held": {"after": ["a"], "using": "held", "run": "tests.echo"},
        "t_default": {"after": ["a"], "run": "tests.echo"},
    })
    manager.fire("a")
    assert manager.storage["t_default#0"].status == "finished"
    assert manager.storage["t_held#0"].status == "scheduled"
    assert [name for _, name, _ in held.held] == ["t_held#0"]
    held.release()
    assert manager.storage["t_held#0"].status == "finished"


def test_run_names_the_registered_task(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.thread_name"}})
    manager.fire("a")
    assert set(manager.storage["t#0"].metadata["result"]) == {"thread"}


def test_unknown_directives_are_kept_as_extras(storage: StorageBackend) -> None:
    manager = TriggerManager(storage)
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.echo",
                                        "notifyTeam": "ops", "ui": {"colour": "red"}}})
    config = TriggerManager(storage).storage.tasks["t"]
    assert config.extras == {"notifyTeam": "ops", "ui": {"colour": "red"}}
    assert config.to_json()["notifyTeam"] == "ops"


def test_camel_case_and_snake_case_directives_are_the_same(manager: TriggerManager) -> None:
    manager.update_configuration({
        "camel": {"after": ["a"], "andEvery": "p", "withParams": {"p": {"k": 1}},
                  "run": "tests.echo"},
        "snake": {"after": ["a"], "and_every": "p", "with_params": {"p": {"k": 1}},
                  "run": "tests.echo"},
    })
    camel, snake = manager.storage.tasks["camel"], manager.storage.tasks["snake"]
    assert (camel.and_every, camel.with_params) == (snake.and_every, snake.with_params)
    assert camel.extras == snake.extras == {}


def test_task_config_fields(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {
        "after": ["a", "b", "a"], "andEvery": "p", "unless": ["x"], "withParams": {"a": {}},
        "using": "inline", "run": "tests.echo"}})
    config = manager.storage.tasks["t"]
    assert config == TaskConfig(name="t", run="tests.echo", after=("a", "b"), and_every="p",
                                unless=("x",), with_params={"a": {}}, using="inline")
    assert config.triggers == {"a", "b", "p", "x"}


# -- update_configuration ------------------------------------------------------------------


def test_update_configuration_merges_by_task_name(manager: TriggerManager) -> None:
    manager.update_configuration({"t1": {"after": ["a"], "run": "tests.echo"},
                                  "t2": {"after": ["a"], "run": "tests.echo"}})
    manager.update_configuration({"t2": {"after": ["b"], "run": "tests.noop"},
                                  "t3": {"after": ["c"], "run": "tests.noop"}})
    tasks = manager.storage.tasks
    assert sorted(tasks) == ["t1", "t2", "t3"]
    assert (tasks["t2"].after, tasks["t2"].run) == (("b",), "tests.noop")
    manager.fire("b")
    assert manager.storage["t2#0"].status == "finished"


def test_update_configuration_runs_one_shot_tasks_whose_triggers_already_fired(
        any_manager: TriggerManager) -> None:
    any_manager.update_configuration({"t1": {"after": ["a"], "run": "tests.noop"}})
    any_manager.fire("a", {"x": 1})
    any_manager.fire("b", {"y": 2})
    any_manager.update_configuration({"late": {"after": ["a", "b"], "run": "tests.echo"}})
    settle()
    late = any_manager.storage["late#0"]
    assert late.status == "finished"
    assert late.kwargs == {"a": {"x": 1}, "b": {"y": 2}}


def test_update_configuration_does_not_replay_past_and_every_firings(
        manager: TriggerManager) -> None:
    manager.update_configuration({"t1": {"after": ["a"], "run": "tests.noop"}})
    manager.fire("page", {"n": 0})
    manager.update_configuration({"pages": {"andEvery": "page", "run": "tests.echo"}})
    assert manager.storage.instances_of_task("pages") == []
    manager.fire("page", {"n": 1})
    assert [i.kwargs for i in manager.storage.instances_of_task("pages")] == [{"page": {"n": 1}}]


def test_update_configuration_abandons_a_task_whose_unless_already_fired(
        manager: TriggerManager) -> None:
    manager.fire("a")
    manager.fire("x")
    manager.update_configuration({"t": {"after": ["a"], "unless": ["x"], "run": "tests.echo"}})
    assert manager.storage["t#0"].status == "abandoned"


def test_update_configuration_accepts_task_configs(manager: TriggerManager) -> None:
    config = TaskConfig(name="ignored", run="tests.echo", after=("a",),
                        extras={"notifyTeam": "ops"})
    manager.update_configuration({"t": config})
    stored = manager.storage.tasks["t"]
    assert (stored.name, stored.after, stored.extras) == ("t", ("a",), {"notifyTeam": "ops"})
