"""The storage contract, run on every backend: what a session keeps, and that it keeps it atomically."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from tests.conftest import StorageFactory
from triggerhooks import (
    InstanceNotFoundError,
    TaskConfig,
    TriggerManager,
    UnstorableKwargsError,
    trigger_task,
)
from triggerhooks.core.rules import Transition
from triggerhooks.plugins import hookimpl, registered
from triggerhooks.runners import TaskRunner
from triggerhooks.signals import session_finalized
from triggerhooks.storages import Changes, Commit, Plan, StorageBackend, open_reference
from triggerhooks.task import TaskContext
from triggerhooks.testing.signals import connected


def step(storage: StorageBackend, plan: Plan, body: Callable[[Transition], Any]) -> Commit:
    """One transition through the engine, as the manager runs it."""
    def compute(view: Any) -> Changes:
        transition = Transition(view)
        transition.changes.result = body(transition)
        return transition.finish()
    return storage.transact(plan, compute)


class CollectingRunner(TaskRunner):
    """Keeps scheduled instances instead of running them, so a test can hand them off itself."""

    name = "tests.collect"
    handed: list[str] = []

    def schedule(self, manager: TriggerManager, instance_name: str, countdown: float = 0.0) -> None:
        self.handed.append(instance_name)


class _CollectPlugin:
    @hookimpl
    def triggerhooks_register_runners(self, registry: Any) -> None:
        registry.register("tests.collect")(CollectingRunner)


@pytest.fixture
def collect() -> Iterator[list[str]]:
    CollectingRunner.handed = []
    with registered(_CollectPlugin(), name="tests-collect-runner"):
        yield CollectingRunner.handed


@trigger_task(name="tests.storage.warn")
def warn_task(context: TaskContext) -> dict[str, Any]:
    with context.get_logger_context() as logger:
        logger.warning("careful")
    return {"warned": True}


# -- the rules, stored -----------------------------------------------------------------------


def test_fan_in_in_any_order_merges_params(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a", "b", "c"], "run": "tests.echo",
                                        "withParams": {"b": {"p": 1, "y": 0}}}})
    manager.fire("c", {"z": 3})
    manager.fire("b", {"y": 2})
    assert manager.storage.instances == {}
    manager.fire("a")
    instance = manager.storage["t#0"]
    assert instance.status == "finished"
    assert instance.kwargs == {"a": {}, "b": {"p": 1, "y": 2}, "c": {"z": 3}}
    assert manager.storage.latest_kwargs == {"a": {}, "b": {"y": 2}, "c": {"z": 3},
                                             "t": {"received": instance.kwargs},
                                             "sessionFinalized": {}}


def test_one_shot_task_runs_once_however_often_its_triggers_fire(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.noop"}})
    for number in range(3):
        manager.fire("a", {"n": number})
    assert list(manager.storage.instances) == ["t#0"]
    assert manager.storage.latest_kwargs["a"] == {"n": 2}
    assert len(manager.storage) == 1


def test_and_every_waits_for_after_then_runs_every_instance(manager: TriggerManager) -> None:
    manager.update_configuration({"pages": {"after": ["start"], "andEvery": "page",
                                            "run": "tests.echo"}})
    manager.fire("page", {"n": 0})
    manager.fire("page", {"n": 1})
    storage = manager.storage
    assert [i.status for i in storage.instances_of_task("pages")] == ["unstarted", "unstarted"]
    assert [i.name for i in storage.get_unresolved_instances()] == ["pages#0", "pages#1"]
    manager.fire("start", {"s": True})
    manager.fire("page", {"n": 2})
    instances = storage.instances_of_task("pages")
    assert [i.status for i in instances] == ["finished"] * 3
    assert [i.kwargs["page"] for i in instances] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert all(i.kwargs["start"] == {"s": True} for i in instances)
    assert storage.get_unresolved_instances() == []


def test_unless_abandons_pending_instances_and_tasks_that_never_ran(manager: TriggerManager) -> None:
    manager.update_configuration({
        "pages": {"after": ["start"], "andEvery": "page", "unless": ["stop", "halt"],
                  "run": "tests.noop"},
        "never": {"after": ["x"], "unless": ["stop"], "run": "tests.noop"},
    })
    manager.fire("page")
    manager.fire("stop")
    assert manager.storage["pages#0"].status == "unstarted"
    assert manager.storage["never#0"].status == "abandoned"
    manager.fire("halt")
    assert manager.storage["pages#0"].status == "abandoned"
    manager.fire("start")
    manager.fire("page")
    assert len(manager.storage.instances_of_task("pages")) == 1
    assert manager.storage.is_finalized


def test_long_cascade_is_stored_hop_by_hop(manager: TriggerManager) -> None:
    chain = {f"c{i}": {"after": [f"c{i - 1}" if i else "go"], "run": "tests.echo"}
             for i in range(60)}
    manager.update_configuration(chain)
    manager.fire("go", {"depth": 0})
    assert all(i.status == "finished" for i in manager.storage)
    storage = manager.storage
    assert storage["c59#0"].kwargs == {"c58": storage["c58#0"].metadata["result"]}
    assert storage["c1#0"].kwargs == {"c0": {"received": {"go": {"depth": 0}}}}
    assert manager.storage.is_finalized


def test_failure_replay_and_skip_are_stored(manager: TriggerManager) -> None:
    manager.update_configuration({
        "boom": {"after": ["a"], "run": "tests.boom"},
        "next": {"after": ["boom"], "run": "tests.echo"},
    })
    manager.fire("a", {"k": 1})
    failed = manager.storage["boom#0"]
    assert failed.status == "failed"
    assert failed.metadata["exceptionType"] == "ValueError"
    assert "boom" in failed.metadata["exceptionInfo"]
    copy = manager.replay_failed_instance("boom#0", {"a": {"k": 2}})
    storage = manager.storage
    assert storage["boom#0"].status == "replayed"
    assert copy.name == "boom#1" and storage["boom#1"].status == "failed"
    assert storage["boom#1"].metadata["parent"] == "boom#0"
    assert storage["boom#1"].kwargs == {"a": {"k": 2}}
    manager.skip_failed_instance("boom#1", cascade=True, result={"r": 1})
    assert storage["boom#1"].status == "skipped"
    assert storage["next#0"].kwargs == {"boom": {"r": 1}}
    assert storage["next#0"].status == "finished"
    assert storage.is_finalized


def test_status_metadata_and_log_updates_are_stored(manager: TriggerManager, collect: list[str]) -> None:
    manager.update_configuration({
        "t": {"after": ["a"], "run": "tests.noop", "using": "tests.collect"},
        "u": {"after": ["t"], "run": "tests.noop", "using": "tests.collect"},
        "w": {"after": ["a"], "run": "tests.storage.warn"},
    })
    manager.fire("a")
    assert collect == ["t#0"]
    storage = manager.storage
    assert storage["t#0"].status == "scheduled"
    assert [i.name for i in storage.get_instances_with_unresolved_logs()] == ["w#0"]
    assert storage["w#0"].log_level == logging.WARNING
    manager.mark_instance_logs_resolved("w#0")
    assert storage.get_instances_with_unresolved_logs() == []
    assert storage["w#0"].logs_resolved
    manager.update_instance_metadata("t#0", {"note": "hi"})
    assert storage["t#0"].metadata["note"] == "hi"
    manager.update_instance_status("t#0", "finished", {"result": {"x": 1}}, cascade=True,
                                   cascade_kwargs={"x": 1})
    assert storage["t#0"].status == "finished"
    assert storage["t#0"].metadata["note"] == "hi"
    assert set(storage["t#0"].metadata["timestamps"]) == {"unstarted", "scheduled", "finished"}
    assert storage["u#0"].status == "scheduled"
    assert storage.latest_kwargs["t"] == {"x": 1}
    assert collect == ["t#0", "u#0"]
    assert not storage.is_finalized


def test_claim_runs_a_handed_off_instance_once(manager: TriggerManager, collect: list[str]) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.noop",
                                        "using": "tests.collect"}})
    manager.fire("a")
    assert manager.execute("t#0") is not None
    assert manager.execute("t#0") is None
    assert manager.storage["t#0"].status == "finished"
    commit = step(manager.storage, Plan(instances=("t#0",)), lambda s: s.claim("t#0"))
    assert commit.changes.result is None and commit.changes.is_empty


def test_finalization_happens_once_and_runs_finalization_tasks(manager: TriggerManager) -> None:
    calls: list[str] = []

    def receiver(sender: Any, session_uid: str, **kwargs: Any) -> None:
        calls.append(session_uid)

    manager.update_configuration({
        "t": {"after": ["a"], "run": "tests.noop"},
        "report": {"after": ["sessionFinalized"], "run": "tests.echo"},
    })
    with connected(receiver, session_finalized):
        manager.fire("a")
        manager.fire("a")
        manager.fire("sessionFinalized")
    assert calls == [manager.storage.uid]
    assert manager.storage["report#0"].status == "finished"
    assert "finalizedAt" in manager.storage.metadata
    assert "createdAt" in manager.storage.metadata


# -- what a storage shows -------------------------------------------------------------------------


def test_inspection_api(manager: TriggerManager) -> None:
    manager.update_configuration({
        "second": {"after": ["a"], "run": "tests.noop", "withParams": {"a": {"p": [1, 2]}},
                   "notifyTeam": "ops"},
        "first": {"after": ["a", "b"], "andEvery": "page", "unless": ["no"], "run": "tests.noop"},
    })
    storage = manager.storage
    assert list(storage.tasks) == ["second", "first"]
    assert storage.tasks["second"] == TaskConfig(
        name="second", run="tests.noop", after=("a",), with_params={"a": {"p": [1, 2]}},
        extras={"notifyTeam": "ops"})
    assert storage.tasks["first"].and_every == "page"
    assert [t.name for t in storage.get_unresolved_tasks()] == ["second", "first"]
    manager.fire("page", {"n": 1})
    manager.fire("a", {"é": "ü\u2028"})
    assert list(storage.instances) == ["first#0", "second#0"]
    assert [i.name for i in storage] == ["first#0", "second#0"]
    assert "second#0" in storage and "second#9" not in storage and 3 not in storage
    assert storage.get("second#9") is None
    with pytest.raises(InstanceNotFoundError):
        storage["second#9"]
    assert len(storage) == 2
    assert [t.name for t in storage.get_unresolved_tasks()] == ["first"]
    assert [i.name for i in storage.instances_of_task(storage.tasks["first"])] == ["first#0"]
    assert storage.instances_of_task("nope") == []
    assert storage.latest_kwargs["a"] == {"é": "ü\u2028"}
    dump = storage.debug_repr()
    assert orjson.loads(orjson.dumps(dump)) == dump
    assert dump["uid"] == storage.uid and set(dump["instances"]) == {"first#0", "second#0"}


def test_unstorable_kwargs_change_nothing(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.noop"}})
    before = manager.storage.debug_repr()
    with pytest.raises(UnstorableKwargsError):
        manager.fire("a", {"x": object()})
    assert manager.storage.debug_repr() == before


def test_a_failing_computation_writes_nothing(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a", "b"], "run": "tests.noop"}})
    before = manager.storage.debug_repr()

    def body(step: Transition) -> None:
        step.fire("a", b"{}")
        step.fire("b", b"{}")
        raise RuntimeError("half way")

    with pytest.raises(RuntimeError, match="half way"):
        step(manager.storage, Plan(trigger="a"), body)
    assert manager.storage.debug_repr() == before


def test_an_unstorable_instance_writes_nothing(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.noop"}})
    manager.fire("a")
    before = manager.storage.debug_repr()
    with pytest.raises(UnstorableKwargsError):
        step(manager.storage, Plan(instances=("t#0",)),
             lambda s: (s.fire("x", b"{}"), s.update_metadata("t#0", {"bad": {1, 2}})))
    assert manager.storage.debug_repr() == before


def test_commit_reports_counters(storage: StorageBackend) -> None:
    manager = TriggerManager(storage)
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.noop"},
                                  "u": {"after": ["b"], "run": "tests.noop"},
                                  "f": {"after": ["sessionFinalized"], "run": "tests.noop"}})
    commit = step(storage, Plan(trigger="zzz"), lambda s: s.fire("zzz", b'{"q":1}'))
    assert (commit.counted, commit.unresolved, commit.finalized) == (2, 2, False)
    assert storage.latest_kwargs["zzz"] == {"q": 1}
    manager.fire("a")
    commit = step(storage, Plan(trigger="zzz"), lambda s: None)
    assert (commit.counted, commit.unresolved, commit.finalized) == (2, 1, False)
    manager.fire("b")
    commit = step(storage, Plan(trigger="zzz"), lambda s: None)
    assert (commit.counted, commit.unresolved, commit.finalized) == (2, 0, True)


def test_fire_into_an_unconfigured_session(storage: StorageBackend) -> None:
    manager = TriggerManager(storage)
    manager.fire("a", {"x": 1})
    assert storage.latest_kwargs == {"a": {"x": 1}}
    assert storage.tasks == {} and storage.instances == {} and not storage.is_finalized


def test_sessions_are_shared_by_uid_and_isolated_otherwise(make_storage: StorageFactory) -> None:
    one = make_storage("shared-uid")
    same = make_storage("shared-uid")
    other = make_storage("other-uid")
    TriggerManager(one).update_configuration({"t": {"after": ["a"], "run": "tests.noop"}})
    TriggerManager(same).fire("a")
    assert one["t#0"].status == "finished"
    assert other.tasks == {} and other.latest_kwargs == {}
    other_manager = TriggerManager(other)
    other_manager.update_configuration({"t": {"after": ["b"], "run": "tests.noop"}})
    assert one.tasks["t"].after == ("a",)


def test_uids_with_odd_characters_stay_apart(make_storage: StorageFactory) -> None:
    uids = ["a:b", "a", "b", "a:b:cfg", "{a}", "a}:{b", "a%3Ab", "ü ✓/\\'\"", "x" * 300]
    for uid in uids:
        TriggerManager(make_storage(uid)).fire("uid", {"uid": uid})
    for uid in uids:
        assert make_storage(uid).latest_kwargs == {"uid": {"uid": uid}}


def test_clear_removes_only_its_session(make_storage: StorageFactory) -> None:
    storage, other = make_storage(), make_storage()
    for each in (storage, other):
        manager = TriggerManager(each)
        manager.update_configuration({"t": {"after": ["a"], "run": "tests.noop"}})
        manager.fire("a")
    storage.clear()
    assert storage.debug_repr() == {"uid": storage.uid, "tasks": {}, "instances": {},
                                    "latestKwargs": {}, "metadata": {}}
    assert len(storage) == 0
    assert other["t#0"].status == "finished"
    manager = TriggerManager(storage)
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.noop"}})
    manager.fire("a")
    assert storage["t#0"].status == "finished"


def test_reference_rebuilds_a_storage_of_the_same_session(storage: StorageBackend,
                                                          backend: str) -> None:
    if backend == "memory":
        pytest.skip("the fixture's memory storages live in a private store, not the default one")
    TriggerManager(storage).fire("a", {"x": 1})
    reference = storage.reference()
    assert orjson.loads(orjson.dumps(reference)) == reference
    rebuilt = open_reference(reference)
    assert type(rebuilt) is type(storage) and rebuilt.uid == storage.uid
    assert rebuilt.latest_kwargs == {"a": {"x": 1}}
