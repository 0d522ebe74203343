"""The storage contract: the tests every storage backend must pass, whatever it stores in.

Subclass :class:`StorageContract` in a test module, under a name pytest collects
(``Test...``), and give it a ``make_storage`` fixture: a callable that opens a
storage of the backend under test on the session ``uid`` (a fresh one when no uid
is given), where storages opened with the same uid share one session, as across
processes. :func:`storage_factory` makes one from a function of the uid and clears
every session afterwards::

    class TestMyBackend(StorageContract):
        @pytest.fixture
        def make_storage(self) -> Iterator[StorageFactory]:
            with storage_factory(lambda uid: MyStorageBackend(uid, url=...)) as make:
                yield make

The core runs it on each of its built-in backends (``tests/storages/test_contract.py``).
Importing this module registers the tasks the contract configures (``triggerhooks.contract.*``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import orjson
import pytest

from ..core.rules import Transition
from ..exceptions import FireKeyReusedError, InstanceNotFoundError, UnstorableKwargsError
from ..manager import TriggerManager
from ..models import TaskConfig
from ..signals import session_finalized
from ..storages import MemoryStorageBackend, Plan, StorageBackend, open_reference
from ..storages.memory import default_store
from ..task import TaskContext, trigger_task
from .runners import HoldingRunner, holding_runner
from .signals import connected
from .transitions import run_transition
from .waiting import wait_for

__all__ = ["StorageContract", "StorageFactory", "storage_factory"]

ECHO = "triggerhooks.contract.echo"
NOOP = "triggerhooks.contract.noop"
BOOM = "triggerhooks.contract.boom"
WARN = "triggerhooks.contract.warn"


class StorageFactory(Protocol):
    """Opens a storage on the session ``uid``; on a new session when no uid is given."""

    def __call__(self, uid: str | None = None) -> StorageBackend: ...


@contextmanager
def storage_factory(open_session: Callable[[str], StorageBackend]) -> Iterator[StorageFactory]:
    """A ``make_storage`` from ``open_session(uid)``: a fresh uid when none is given, and
    every session it opened cleared when the block ends."""
    opened: list[StorageBackend] = []

    def make(uid: str | None = None) -> StorageBackend:
        storage = open_session(uid or f"test-{uuid.uuid4().hex[:12]}")
        opened.append(storage)
        return storage

    try:
        yield make
    finally:
        for storage in opened:
            storage.clear()


@trigger_task(name=ECHO)
def echo(context: TaskContext) -> dict[str, Any]:
    """Returns its trigger kwargs, so a test sees what the instance received."""
    return {"received": context.trigger_kwargs}


@trigger_task(name=NOOP)
def noop(context: TaskContext) -> dict[str, Any]:
    return {}


@trigger_task(name=BOOM)
def boom(context: TaskContext) -> dict[str, Any]:
    raise ValueError("boom")


@trigger_task(name=WARN)
def warn(context: TaskContext) -> dict[str, Any]:
    with context.get_logger_context() as logger:
        logger.warning("careful")
    return {"warned": True}


class StorageContract:
    """What a session keeps, and that it keeps it atomically: run on a backend by
    subclassing, with a ``make_storage`` fixture (see the module's docstring)."""

    @pytest.fixture
    def storage(self, make_storage: StorageFactory) -> StorageBackend:
        return make_storage()

    @pytest.fixture
    def manager(self, storage: StorageBackend) -> TriggerManager:
        return TriggerManager(storage)

    @pytest.fixture
    def held(self) -> Iterator[type[HoldingRunner]]:
        with holding_runner() as runner:
            yield runner

    # -- the rules, stored -------------------------------------------------------------------

    def test_fan_in_in_any_order_merges_params(self, manager: TriggerManager) -> None:
        manager.update_configuration({"t": {"after": ["a", "b", "c"], "run": ECHO,
                                            "withParams": {"b": {"p": 1, "y": 0}}}})
        manager.fire("c", {"z": 3})
        manager.fire("b", {"y": 2})
        waiting = manager.storage["t#0"]
        assert (waiting.status, waiting.kwargs) == ("unstarted", {"c": {"z": 3}, "b": {"y": 2}})
        manager.fire("a")
        instance = manager.storage["t#0"]
        assert instance.status == "finished"
        assert instance.kwargs == {"a": {}, "b": {"p": 1, "y": 2}, "c": {"z": 3}}
        assert manager.storage.latest_kwargs == {"a": {}, "b": {"y": 2}, "c": {"z": 3},
                                                 "t": {"received": instance.kwargs},
                                                 "sessionFinalized": {}}

    def test_one_shot_task_runs_once_however_often_its_triggers_fire(self, manager: TriggerManager) -> None:
        manager.update_configuration({"t": {"after": ["a"], "run": NOOP}})
        for number in range(3):
            manager.fire("a", {"n": number})
        assert list(manager.storage.instances) == ["t#0"]
        assert manager.storage.latest_kwargs["a"] == {"n": 2}
        assert len(manager.storage) == 1

    def test_missing_triggers_are_counted_across_configurations(
            self, manager: TriggerManager) -> None:
        """A store may count each task's missing triggers (``SessionView.missing``); if it
        does, the count is exact: a trigger fired twice counts once, a changed ``after``
        is counted afresh, and a task added after its triggers fired runs at once."""
        storage = manager.storage
        manager.update_configuration({"t": {"after": ["a", "b", "c"], "run": NOOP}})
        manager.fire("a")
        manager.fire("a")
        counted = run_transition(storage, Plan(trigger="a"), lambda s: s.view.missing("t"))
        assert counted.changes.result in (None, 2)
        manager.update_configuration({"t": {"after": ["a", "d"], "run": NOOP},
                                      "u": {"after": ["a"], "run": NOOP}})
        assert sorted((i.name, i.status.value) for i in storage) == [
            ("t#0", "unstarted"), ("u#0", "finished")]
        manager.fire("b")
        manager.fire("c")
        assert storage["t#0"].status == "unstarted"
        manager.fire("d")
        assert storage["t#0"].kwargs == {"a": {}, "d": {}}
        counted = run_transition(storage, Plan(trigger="d"), lambda s: s.view.missing("t"))
        assert counted.changes.result in (None, 0)

    def test_and_every_waits_for_after_then_runs_every_instance(self, manager: TriggerManager) -> None:
        manager.update_configuration({"pages": {"after": ["start"], "andEvery": "page",
                                                "run": ECHO}})
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

    def test_unless_abandons_pending_instances_and_tasks_that_never_ran(
            self, manager: TriggerManager) -> None:
        manager.update_configuration({
            "pages": {"after": ["start"], "andEvery": "page", "unless": ["stop", "halt"],
                      "run": NOOP},
            "never": {"after": ["x"], "unless": ["stop"], "run": NOOP},
        })
        manager.fire("page")
        manager.fire("stop")
        assert manager.storage["pages#0"].status == "unstarted"
        assert manager.storage["never#0"].status == "abandoned"
        manager.fire("halt")
        assert manager.storage["pages#0"].status == "abandoned"
        manager.fire("start")
        manager.fire("page")  # recorded, abandoned at once
        assert [i.status for i in manager.storage.instances_of_task("pages")] == ["abandoned"] * 2
        assert manager.storage.is_finalized

    def test_long_cascade_is_stored_hop_by_hop(self, manager: TriggerManager) -> None:
        chain = {f"c{i}": {"after": [f"c{i - 1}" if i else "go"], "run": ECHO}
                 for i in range(60)}
        manager.update_configuration(chain)
        manager.fire("go", {"depth": 0})
        assert all(i.status == "finished" for i in manager.storage)
        storage = manager.storage
        assert storage["c59#0"].kwargs == {"c58": storage["c58#0"].metadata["result"]}
        assert storage["c1#0"].kwargs == {"c0": {"received": {"go": {"depth": 0}}}}
        assert manager.storage.is_finalized

    def test_failure_replay_and_skip_are_stored(self, manager: TriggerManager) -> None:
        manager.update_configuration({
            "boom": {"after": ["a"], "run": BOOM},
            "next": {"after": ["boom"], "run": ECHO},
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

    def test_status_metadata_and_log_updates_are_stored(
            self, manager: TriggerManager, held: type[HoldingRunner]) -> None:
        manager.update_configuration({
            "t": {"after": ["a"], "run": NOOP, "using": "held"},
            "u": {"after": ["t"], "run": NOOP, "using": "held"},
            "w": {"after": ["a"], "run": WARN},
        })
        manager.fire("a")
        assert held.names() == ["t#0"]
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
        assert held.names() == ["t#0", "u#0"]
        assert not storage.is_finalized

    def test_claim_runs_a_handed_off_instance_once(
            self, manager: TriggerManager, held: type[HoldingRunner]) -> None:
        manager.update_configuration({"t": {"after": ["a"], "run": NOOP, "using": "held"}})
        manager.fire("a")
        assert manager.execute("t#0") is not None
        assert manager.execute("t#0") is None
        assert manager.storage["t#0"].status == "finished"
        commit = run_transition(manager.storage, Plan(instances=("t#0",)), lambda s: s.claim("t#0"))
        assert commit.changes.result is None and commit.changes.is_empty

    def test_finalization_happens_once_and_runs_finalization_tasks(self, manager: TriggerManager) -> None:
        calls: list[str] = []

        def receiver(sender: Any, session_uid: str, **kwargs: Any) -> None:
            calls.append(session_uid)

        manager.update_configuration({
            "t": {"after": ["a"], "run": NOOP},
            "report": {"after": ["sessionFinalized"], "run": ECHO},
        })
        with connected(receiver, session_finalized):
            manager.fire("a")
            manager.fire("a")
            manager.fire("sessionFinalized")
        assert calls == [manager.storage.uid]
        assert manager.storage["report#0"].status == "finished"
        assert "finalizedAt" in manager.storage.metadata
        assert "createdAt" in manager.storage.metadata

    # -- what a storage shows ---------------------------------------------------------------

    def test_inspection_api(self, manager: TriggerManager) -> None:
        manager.update_configuration({
            "second": {"after": ["a"], "run": NOOP, "withParams": {"a": {"p": [1, 2]}},
                       "notifyTeam": "ops"},
            "first": {"after": ["a", "b"], "andEvery": "page", "unless": ["no"], "run": NOOP},
        })
        storage = manager.storage
        assert list(storage.tasks) == ["second", "first"]
        assert storage.tasks["second"] == TaskConfig(
            name="second", run=NOOP, after=("a",), with_params={"a": {"p": [1, 2]}},
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

    def test_unstorable_kwargs_change_nothing(self, manager: TriggerManager) -> None:
        manager.update_configuration({"t": {"after": ["a"], "run": NOOP}})
        before = manager.storage.debug_repr()
        with pytest.raises(UnstorableKwargsError):
            manager.fire("a", {"x": object()})
        assert manager.storage.debug_repr() == before

    def test_a_failing_computation_writes_nothing(self, manager: TriggerManager) -> None:
        manager.update_configuration({"t": {"after": ["a", "b"], "run": NOOP}})
        before = manager.storage.debug_repr()

        def body(step: Transition) -> None:
            step.fire("a", b"{}")
            step.fire("b", b"{}")
            raise RuntimeError("half way")

        with pytest.raises(RuntimeError, match="half way"):
            run_transition(manager.storage, Plan(trigger="a"), body)
        assert manager.storage.debug_repr() == before

    def test_an_unstorable_instance_writes_nothing(self, manager: TriggerManager) -> None:
        manager.update_configuration({"t": {"after": ["a"], "run": NOOP}})
        manager.fire("a")
        before = manager.storage.debug_repr()
        with pytest.raises(UnstorableKwargsError):
            run_transition(manager.storage, Plan(instances=("t#0",)),
                 lambda s: (s.fire("x", b"{}"), s.update_metadata("t#0", {"bad": {1, 2}})))
        assert manager.storage.debug_repr() == before

    def test_commit_reports_counters(self, storage: StorageBackend) -> None:
        manager = TriggerManager(storage)
        manager.update_configuration({"t": {"after": ["a"], "run": NOOP},
                                      "u": {"after": ["b"], "run": NOOP},
                                      "f": {"after": ["sessionFinalized"], "run": NOOP}})
        commit = run_transition(storage, Plan(trigger="zzz"), lambda s: s.fire("zzz", b'{"q":1}'))
        assert (commit.counted, commit.unresolved, commit.finalized) == (2, 2, False)
        assert storage.latest_kwargs["zzz"] == {"q": 1}
        manager.fire("a")
        commit = run_transition(storage, Plan(trigger="zzz"), lambda s: None)
        assert (commit.counted, commit.unresolved, commit.finalized) == (2, 1, False)
        manager.fire("b")
        commit = run_transition(storage, Plan(trigger="zzz"), lambda s: None)
        assert (commit.counted, commit.unresolved, commit.finalized) == (2, 0, True)

    def test_fire_into_an_unconfigured_session(self, storage: StorageBackend) -> None:
        manager = TriggerManager(storage)
        manager.fire("a", {"x": 1})
        assert storage.latest_kwargs == {"a": {"x": 1}}
        assert storage.tasks == {} and storage.instances == {} and not storage.is_finalized

    def test_sessions_are_shared_by_uid_and_isolated_otherwise(self, make_storage: StorageFactory) -> None:
        one = make_storage("shared-uid")
        same = make_storage("shared-uid")
        other = make_storage("other-uid")
        TriggerManager(one).update_configuration({"t": {"after": ["a"], "run": NOOP}})
        TriggerManager(same).fire("a")
        assert one["t#0"].status == "finished"
        assert other.tasks == {} and other.latest_kwargs == {}
        other_manager = TriggerManager(other)
        other_manager.update_configuration({"t": {"after": ["b"], "run": NOOP}})
        assert one.tasks["t"].after == ("a",)

    def test_uids_with_odd_characters_stay_apart(self, make_storage: StorageFactory) -> None:
        uids = ["a:b", "a", "b", "a:b:cfg", "{a}", "a}:{b", "a%3Ab", "ü ✓/\\'\"", "x" * 300]
        for uid in uids:
            TriggerManager(make_storage(uid)).fire("uid", {"uid": uid})
        for uid in uids:
            assert make_storage(uid).latest_kwargs == {"uid": {"uid": uid}}

    def test_clear_removes_only_its_session(self, make_storage: StorageFactory) -> None:
        storage, other = make_storage(), make_storage()
        for each in (storage, other):
            manager = TriggerManager(each)
            manager.update_configuration({"t": {"after": ["a"], "run": NOOP}})
            manager.fire("a")
        storage.clear()
        assert storage.debug_repr() == {"uid": storage.uid, "tasks": {}, "instances": {},
                                        "latestKwargs": {}, "metadata": {}}
        assert len(storage) == 0
        assert other["t#0"].status == "finished"
        manager = TriggerManager(storage)
        manager.update_configuration({"t": {"after": ["a"], "run": NOOP}})
        manager.fire("a")
        assert storage["t#0"].status == "finished"

    def test_reference_rebuilds_a_storage_of_the_same_session(self, storage: StorageBackend) -> None:
        if isinstance(storage, MemoryStorageBackend) and storage.store is not default_store:
            pytest.skip("a memory storage in a private store cannot be rebuilt from its reference")
        TriggerManager(storage).fire("a", {"x": 1})
        reference = storage.reference()
        assert orjson.loads(orjson.dumps(reference)) == reference
        rebuilt = open_reference(reference)
        assert type(rebuilt) is type(storage) and rebuilt.uid == storage.uid
        assert rebuilt.latest_kwargs == {"a": {"x": 1}}

    # -- fire keys, listing, recovery -------------------------------------------------------------

    def test_a_keyed_firing_is_stored_once_and_repeats_answer_the_first(
            self, make_storage: StorageFactory) -> None:
        uid = f"keys-{uuid.uuid4().hex[:12]}"
        storage = make_storage(uid)
        if not storage.supports_fire_keys:
            pytest.skip(f"{type(storage).__name__} does not keep fire keys")
        manager = TriggerManager(storage)
        manager.update_configuration({"t": {"after": [], "andEvery": "page", "run": ECHO}})
        first = manager.fire("page", {"n": 1, "m": 2}, key="page-1")
        assert (first.repeated, first.scheduled) == (False, ("t#0",))
        # Another process, the same key, the kwargs in another order: a repeat.
        again = TriggerManager(make_storage(uid)).fire("page", {"m": 2, "n": 1},
                                                                key="page-1")
        assert again.repeated and (again.fired_at, again.scheduled) == (first.fired_at,
                                                                         first.scheduled)
        assert [i.name for i in storage.instances_of_task("t")] == ["t#0"]
        with pytest.raises(FireKeyReusedError):
            manager.fire("page", {"n": 2}, key="page-1")
        with pytest.raises(FireKeyReusedError):
            manager.fire("other", {"n": 1, "m": 2}, key="page-1")
        assert not manager.fire("page", {"n": 1, "m": 2}, key="page-2").repeated
        assert len(storage.instances_of_task("t")) == 2

    def test_fire_keys_go_with_the_session(self, make_storage: StorageFactory) -> None:
        storage = make_storage()
        if not storage.supports_fire_keys:
            pytest.skip(f"{type(storage).__name__} does not keep fire keys")
        manager = TriggerManager(storage)
        manager.fire("a", key="k")
        assert manager.fire("a", key="k").repeated
        storage.clear()
        assert not manager.fire("a", key="k").repeated
        assert storage.latest_kwargs == {"a": {}}

    def test_session_uids_lists_the_sessions_that_hold_something(
            self, make_storage: StorageFactory) -> None:
        storage = make_storage()
        try:
            before = set(storage.session_uids())
        except NotImplementedError:
            pytest.skip(f"{type(storage).__name__} cannot list its sessions")
        assert storage.uid not in before
        TriggerManager(storage).fire("a")
        other = make_storage("with:odd {chars} ü")
        TriggerManager(other).fire("b")
        assert {storage.uid, other.uid} <= set(storage.session_uids())
        storage.clear()
        assert storage.uid not in storage.session_uids()

    def test_a_lost_hand_off_is_recovered_and_runs_once(self, storage: StorageBackend,
                                                        held: type[HoldingRunner]) -> None:
        manager = TriggerManager(storage, claim_grace_seconds=0.001)
        manager.update_configuration({"t": {"after": ["a"], "run": ECHO, "using": held.name}})
        manager.fire("a", {"x": 1})
        held.drop()  # the hand-off is lost, as with a process killed after the commit
        assert storage["t#0"].status == "scheduled"
        manager.update_configuration({"t": {"after": ["a"], "run": ECHO}})
        wait_for(manager.stuck, 10, "the instance to count as stuck", interval=0.001)
        assert [(r.action, r.instance) for r in manager.recover()] == [("handed off", "t#0")]
        assert storage["t#0"].status == "finished"
        assert storage["t#0"].metadata["recovered"]["count"] == 1
        assert manager.recover() == [] and storage.is_finalized

    def test_active_sessions_are_those_with_work_scheduled_or_running(
            self, make_storage: StorageFactory, held: type[HoldingRunner]) -> None:
        storage, idle = make_storage(), make_storage()
        try:
            storage.active_sessions()
        except NotImplementedError:
            pytest.skip(f"{type(storage).__name__} cannot list its sessions")
        manager = TriggerManager(storage)
        manager.update_configuration({
            "t": {"after": ["a"], "run": NOOP, "using": held.name},
            "u": {"after": ["b"], "run": NOOP, "using": held.name}})
        TriggerManager(idle).fire("a")
        manager.fire("a")
        manager.fire("b")
        assert storage.uid in storage.active_sessions()
        first = held.held.pop(0)
        assert first.manager.execute(first.name) is not None  # t#0 finished, u#0 scheduled
        assert storage.uid in storage.active_sessions()
        held.release()
        assert storage.uid not in storage.active_sessions()
        assert idle.uid not in storage.active_sessions()
