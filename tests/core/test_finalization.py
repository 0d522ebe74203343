"""Built-in session finalization: ``sessionFinalized`` fires, and ``session_finalized``
is sent, exactly once, when every task is resolved."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from triggerhooks import (
    SESSION_FINALIZED,
    SignalHandlingError,
    ThreadingTaskRunner,
    TriggerManager,
    capture_signals,
    connected,
)
from triggerhooks.models import TaskInstance
from triggerhooks.signals import post_fire, pre_fire, session_finalized
from triggerhooks.storages import StorageBackend
from triggerhooks.task import TaskContext, TriggerTask

from .test_cookbook import FinalizingTriggerManager  # the seed's recipe, verbatim

pytestmark = pytest.mark.usefixtures("isolated_signals")

_barriers: dict[str, threading.Barrier] = {}


class FinishTogether(TriggerTask):
    """Waits until every instance of its session's barrier arrived, then finishes."""

    name = "tests.finalization.FinishTogether"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        _barriers[context.session_uid].wait(timeout=10)
        return {"instance": context.task_instance.name}


class Warns(TriggerTask):
    name = "tests.finalization.Warns"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        with context.get_logger_context() as logger:
            logger.warning("something to review")
        return {}


FINAL = {"after": [SESSION_FINALIZED], "run": "tests.echo"}


def test_finalized_once_when_every_task_is_resolved(manager: TriggerManager) -> None:
    manager.update_configuration({
        "first": {"after": ["a"], "run": "tests.echo"},
        "second": {"after": ["first", "b"], "run": "tests.echo"},
        "final": FINAL,
    })
    with capture_signals(session_finalized) as finalized:
        manager.fire("a")
        assert not manager.storage.is_finalized
        manager.fire("b", {"page": 2})
        assert manager.storage.is_finalized
        manager.fire("b", {"page": 3})
        manager.update_instance_metadata("second#0", {"reviewed": True})
    assert len(finalized) == 1
    assert finalized[0].sender is TriggerManager and finalized[0]["manager"] is manager
    assert [i.status for i in manager.storage.instances_of_task("final")] == ["finished"]
    assert manager.storage.latest_kwargs[SESSION_FINALIZED] == {}
    assert "finalizedAt" in manager.storage.metadata


def test_a_second_session_finalized_fire_is_ignored_without_signals(
        manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.echo"}, "final": FINAL})
    manager.fire("a")
    before = manager.storage.debug_repr()
    with capture_signals() as sent:
        manager.fire(SESSION_FINALIZED, {"again": True})
    assert sent == []
    assert manager.storage.debug_repr() == before


def test_sessions_without_counted_tasks_are_never_finalized(
        make_storage: Callable[[], StorageBackend]) -> None:
    empty = TriggerManager(make_storage())
    empty.fire("anything")
    only_final = TriggerManager(make_storage())
    only_final.update_configuration({"final": FINAL})
    only_final.fire("anything")
    assert not empty.storage.is_finalized and not only_final.storage.is_finalized
    assert only_final.storage.instances == {}


def test_a_failed_instance_blocks_finalization_until_resolved(manager: TriggerManager) -> None:
    manager.update_configuration({"bad": {"after": ["a"], "run": "tests.boom"}, "final": FINAL})
    manager.fire("a")
    assert not manager.storage.is_finalized
    manager.replay_failed_instance("bad#0")  # fails again
    assert not manager.storage.is_finalized
    with capture_signals(session_finalized) as finalized:
        manager.skip_failed_instance("bad#1")
    assert len(finalized) == 1 and manager.storage.is_finalized
    assert manager.storage["final#0"].status == "finished"


def test_an_abandoned_task_counts_as_resolved(manager: TriggerManager) -> None:
    manager.update_configuration({
        "t": {"after": ["a"], "run": "tests.echo"},
        "optional": {"after": ["never"], "unless": ["a"], "run": "tests.echo"},
    })
    manager.fire("a")
    assert manager.storage["optional#0"].status == "abandoned"
    assert manager.storage.is_finalized


def test_finalize_only_once_logs_are_resolved(make_storage: Callable[[], StorageBackend]) -> None:
    manager = TriggerManager(make_storage(), finalize_log_level=logging.WARNING)
    manager.update_configuration({"w": {"after": ["a"], "run": Warns.name},
                                  "t": {"after": ["a"], "run": "tests.echo"}, "final": FINAL})
    manager.fire("a")
    assert manager.storage["w#0"].log_level == logging.WARNING
    assert manager.get_unresolved_tasks() == [manager.storage.tasks["final"]]
    assert not manager.storage.is_finalized

    with capture_signals(session_finalized) as finalized:
        manager.mark_instance_logs_resolved("w#0")
    assert len(finalized) == 1
    assert manager.storage["final#0"].status == "finished"


def test_finalize_log_level_above_what_was_logged(make_storage: Callable[[], StorageBackend]) -> None:
    class StrictManager(TriggerManager):
        finalize_log_level = logging.ERROR

    manager = StrictManager(make_storage())
    manager.update_configuration({"w": {"after": ["a"], "run": Warns.name}})
    manager.fire("a")
    assert manager.storage.is_finalized  # a WARNING does not block an ERROR threshold
    with pytest.raises(ValueError, match="WARNING"):
        TriggerManager(make_storage(), finalize_log_level=logging.INFO)


def test_a_vetoed_finalization_is_tried_again_after_the_next_change(
        manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.echo"}, "final": FINAL})

    def not_yet(sender: Any, trigger_name: str, **kwargs: Any) -> None:
        if trigger_name == SESSION_FINALIZED:
            raise PermissionError("not yet")

    with connected(not_yet, pre_fire, raise_exception=True), \
            pytest.raises(SignalHandlingError, match="not yet"):
        manager.fire("a")
    assert manager.storage["t#0"].status == "finished"
    assert not manager.storage.is_finalized
    manager.update_instance_metadata("t#0", {"checked": True})
    assert manager.storage.is_finalized
    assert manager.storage["final#0"].status == "finished"


def test_the_cookbook_finalizing_manager_still_finalizes_once(
        make_storage: Callable[[], StorageBackend]) -> None:
    manager = FinalizingTriggerManager(make_storage())
    manager.update_configuration({
        "t_importSubject": {"after": ["firstPageReceived"], "run": "tests.echo"},
        "t_importResponses": {"after": ["t_importSubject", "pageReceived"], "run": "tests.echo"},
        "t_finalize": FINAL,
    })
    with capture_signals() as sent:
        manager.fire("pageReceived")
        manager.fire("firstPageReceived")
    assert len(sent.of(session_finalized)) == 1
    assert [s["trigger_name"] for s in sent.of(pre_fire)].count(SESSION_FINALIZED) == 1
    assert [s["trigger_name"] for s in sent.of(post_fire)].count(SESSION_FINALIZED) == 1
    assert sent.of(session_finalized)[0].sender is FinalizingTriggerManager
    assert [i.status for i in manager.storage.instances_of_task("t_finalize")] == ["finished"]


def _finalized_runs(storage: StorageBackend) -> list[TaskInstance]:
    return storage.instances_of_task("final")


def test_two_threads_finishing_the_last_tasks_together_finalize_once(
        make_storage: Callable[[], StorageBackend]) -> None:
    rounds = 5
    managers = [TriggerManager(make_storage(), task_runner="threading") for _ in range(rounds)]
    for manager in managers:
        _barriers[manager.storage.uid] = threading.Barrier(2)
        manager.update_configuration({
            "left": {"after": ["go"], "run": FinishTogether.name},
            "right": {"after": ["go"], "run": FinishTogether.name},
            "final": FINAL,
        })
    try:
        with capture_signals(session_finalized) as finalized:
            for manager in managers:
                manager.fire("go")
            ThreadingTaskRunner.join_all(timeout=30)
    finally:
        for manager in managers:
            _barriers.pop(manager.storage.uid)
    for manager in managers:
        storage = manager.storage
        assert storage["left#0"].status == storage["right#0"].status == "finished"
        assert [i.status for i in _finalized_runs(storage)] == ["finished"]
    assert sorted(s["session_uid"] for s in finalized) == sorted(m.storage.uid for m in managers)


def test_two_concurrent_finalization_attempts_store_one(manager: TriggerManager) -> None:
    """Both threads see a finalizable session and fire sessionFinalized at the same moment:
    the "finalized" mark is part of the atomic fire, so exactly one is stored."""
    manager.update_configuration({"t1": {"after": ["a"], "run": "tests.echo"},
                                  "t2": {"after": ["a"], "run": "tests.echo"}, "final": FINAL})
    veto = True
    arrived: list[str] = []
    together = threading.Barrier(2)

    def gate(sender: Any, trigger_name: str, **kwargs: Any) -> None:
        if trigger_name != SESSION_FINALIZED:
            return
        if veto:
            raise PermissionError("not yet")
        arrived.append(threading.current_thread().name)
        together.wait(timeout=10)

    with connected(gate, pre_fire, raise_exception=True):
        with pytest.raises(SignalHandlingError):
            manager.fire("a")  # all resolved, but the first finalization is vetoed
        assert not manager.storage.is_finalized
        veto = False
        with capture_signals(session_finalized, post_fire) as sent:
            threads = [threading.Thread(target=manager.update_instance_metadata,
                                        args=(name, {"touched": True}), name=name)
                       for name in ("t1#0", "t2#0")]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
    assert sorted(arrived) == ["t1#0", "t2#0"]  # both attempts were in flight together
    assert len(sent.of(session_finalized)) == 1
    assert [s["trigger_name"] for s in sent.of(post_fire)] == [SESSION_FINALIZED, "final"]
    assert [i.status for i in _finalized_runs(manager.storage)] == ["finished"]


def test_finalizing_asks_the_store_nothing_first(manager: TriggerManager,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit that resolves the last task leads straight to the sessionFinalized firing
    (a store with round trips pays none for asking whether it was finalized already)."""
    asked: list[bool] = []
    storage_type = type(manager.storage)
    original = storage_type.is_finalized

    def counting(self: StorageBackend) -> bool:
        asked.append(True)
        return bool(original.fget(self))  # type: ignore[attr-defined]

    monkeypatch.setattr(storage_type, "is_finalized", property(counting))
    manager.update_configuration({"t": {"after": ["go"], "run": "tests.echo"}, "final": FINAL})
    with capture_signals(session_finalized) as sent:
        manager.fire("go")
    assert asked == []
    assert len(sent) == 1 and manager.storage.is_finalized
