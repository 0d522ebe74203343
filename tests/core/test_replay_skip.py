"""Recovering from failures: replay_failed_instance and skip_failed_instance, and their hooks."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import settle
from triggerhooks import (
    InvalidStatusError,
    TaskInstance,
    TriggerManager,
    UnstorableKwargsError,
    trigger_task,
)
from triggerhooks.storages import StorageBackend
from triggerhooks.task import TaskContext
from triggerhooks.testing import HoldingRunner

_FIXED: set[str] = set()


@trigger_task(name="test_replay_skip.fails_until_fixed")
def fails_until_fixed(context: TaskContext) -> dict[str, Any]:
    """Fails unless the session's uid was marked fixed or the kwargs say so."""
    if context.session_uid not in _FIXED and not context.trigger_kwargs.get("a", {}).get("ok"):
        raise ValueError("not fixed yet")
    return {"kwargs": context.trigger_kwargs}


@pytest.fixture
def failed(any_manager: TriggerManager) -> TriggerManager:
    """``t#0`` failed; ``down`` waits for ``t``."""
    any_manager.update_configuration({
        "t": {"after": ["a"], "run": "test_replay_skip.fails_until_fixed",
              "withParams": {"p": {"k": 1}}},
        "down": {"after": ["t"], "run": "tests.echo"},
    })
    any_manager.fire("a", {"n": 1})
    settle()
    assert any_manager.storage["t#0"].status == "failed"
    return any_manager


def _fix(manager: TriggerManager) -> None:
    _FIXED.add(manager.storage.uid)


# -- replay --------------------------------------------------------------------------------


def test_replay_marks_the_failed_instance_replayed_and_runs_a_copy(failed: TriggerManager) -> None:
    _fix(failed)
    copy = failed.replay_failed_instance("t#0")
    settle()
    assert copy.name == "t#1"
    assert copy.metadata["parent"] == "t#0"
    old, new = failed.storage["t#0"], failed.storage["t#1"]
    assert old.status == "replayed" and old.is_resolved
    assert "replayed" in old.metadata["timestamps"]
    assert old.metadata["exceptionType"] == "ValueError"  # the failure stays on record
    assert new.status == "finished"
    assert new.kwargs == old.kwargs == {"a": {"n": 1}, "p": {"k": 1}}
    assert new.metadata["parent"] == "t#0"
    assert "exceptionType" not in new.metadata
    assert failed.storage["down#0"].kwargs == {"t": new.metadata["result"]}  # cascade


def test_replay_with_replacement_kwargs(failed: TriggerManager) -> None:
    failed.replay_failed_instance("t#0", replacement_kwargs={"a": {"ok": True}})
    settle()
    new = failed.storage["t#1"]
    assert new.status == "finished"
    assert new.kwargs == {"a": {"ok": True}, "p": {"k": 1}}  # withParams still merged under


def test_replay_with_empty_replacement_kwargs_runs_with_none(failed: TriggerManager) -> None:
    _fix(failed)
    failed.replay_failed_instance("t#0", replacement_kwargs={})
    settle()
    assert failed.storage["t#1"].kwargs == {"p": {"k": 1}}


@pytest.mark.parametrize("kwargs", [5, "ok", [1], True])
def test_replacement_kwargs_of_a_trigger_must_be_a_mapping(failed: TriggerManager,
                                                           kwargs: object) -> None:
    """As for ``fire``: a copy never runs with kwargs no firing could have given it."""
    with pytest.raises(UnstorableKwargsError, match="the kwargs of trigger 'a' must be a mapping"):
        failed.replay_failed_instance("t#0", replacement_kwargs={"a": kwargs})
    settle()
    assert [i.status for i in failed.storage.instances_of_task("t")] == ["failed"]


def test_replacement_kwargs_of_none_are_empty_as_for_fire(failed: TriggerManager) -> None:
    _fix(failed)
    failed.replay_failed_instance("t#0", replacement_kwargs={"a": None, "p": None})
    settle()
    assert failed.storage["t#1"].kwargs == {"a": {}, "p": {"k": 1}}


@trigger_task(name="test_replay_skip.retries_with_bad_kwargs")
def retries_with_bad_kwargs(context: TaskContext) -> dict[str, Any]:
    raise context.retry(replacement_kwargs={"a": 5})


def test_a_retry_with_replacement_kwargs_that_are_not_mappings_fails(
        any_manager: TriggerManager) -> None:
    any_manager.update_configuration({
        "t": {"after": ["a"], "run": "test_replay_skip.retries_with_bad_kwargs"}})
    any_manager.fire("a")
    settle()
    [instance] = any_manager.storage.instances_of_task("t")
    assert instance.status == "failed"
    assert instance.metadata["exceptionType"] == "triggerhooks.exceptions.UnstorableKwargsError"
    assert "the kwargs of trigger 'a' must be a mapping" in instance.metadata["exceptionInfo"]


@trigger_task(name="test_replay_skip.import_subject")
def import_subject(context: TaskContext) -> dict[str, Any]:
    return {"subjectId": 42}


@trigger_task(name="test_replay_skip.needs_the_subject")
def needs_the_subject(context: TaskContext) -> dict[str, Any]:
    """Needs the subject of its cascade, and a first page that is ok."""
    subject = context.trigger_kwargs["t_importSubject"]["subjectId"]
    if not context.trigger_kwargs["firstPageReceived"].get("ok"):
        raise ValueError("the first page is broken")
    return {"subject": subject}


def test_replay_with_merge_replaces_only_the_triggers_it_names(any_manager: TriggerManager) -> None:
    any_manager.update_configuration({
        "t_importSubject": {"after": ["go"], "run": "test_replay_skip.import_subject"},
        "t_page": {"after": ["t_importSubject", "firstPageReceived"],
                   "run": "test_replay_skip.needs_the_subject", "withParams": {"p": {"k": 1}}},
    })
    any_manager.fire("firstPageReceived", {"page": 1, "ok": False})
    any_manager.fire("go")
    settle()
    failed = any_manager.storage["t_page#0"]
    assert failed.status == "failed"
    assert set(failed.kwargs) == {"t_importSubject", "firstPageReceived", "p"}

    copy = any_manager.replay_failed_instance("t_page#0", {"firstPageReceived": {"ok": True}},
                                              merge=True)
    settle()
    merged = any_manager.storage[copy.name]
    assert merged.status == "finished"
    assert merged.kwargs == {**failed.kwargs, "firstPageReceived": {"ok": True}}
    assert merged.metadata["result"] == {"subject": 42}

    # without merge, the replacement is all the copy gets (withParams merged under it)
    any_manager.fire("firstPageReceived", {"ok": False})  # no new instance: t_page is one-shot
    any_manager.update_instance_status(copy.name, "failed")
    replaced = any_manager.replay_failed_instance(copy.name, {"firstPageReceived": {"ok": True}})
    settle()
    alone = any_manager.storage[replaced.name]
    assert alone.kwargs == {"firstPageReceived": {"ok": True}, "p": {"k": 1}}
    assert alone.status == "failed" and alone.metadata["exceptionType"] == "KeyError"


def test_a_replay_that_fails_again_can_be_replayed_again(failed: TriggerManager) -> None:
    failed.replay_failed_instance(failed.storage["t#0"])
    settle()
    assert failed.storage["t#1"].status == "failed"
    _fix(failed)
    third = failed.replay_failed_instance("t#1")
    settle()
    assert third.metadata["parent"] == "t#1"
    assert [i.status for i in failed.storage.instances_of_task("t")] == [
        "replayed", "replayed", "finished"]


@pytest.mark.parametrize("status", ["finished", "replayed", "skipped", "abandoned", "unstarted",
                                    "scheduled", "running"])
def test_only_failed_instances_can_be_replayed(manager: TriggerManager,
                                               held: type[HoldingRunner], status: str) -> None:
    manager.update_configuration({"t": {"after": ["a"], "using": "held", "run": "tests.boom"}})
    manager.fire("a")
    held.release()
    manager.update_instance_status("t#0", status)
    with pytest.raises(InvalidStatusError, match=f"cannot replay t#0: it is {status}"):
        manager.replay_failed_instance("t#0")
    assert manager.storage["t#0"].status == status
    assert "t#1" not in manager.storage


def test_post_replay_hook_gets_the_copy(storage: StorageBackend) -> None:
    seen: list[TaskInstance] = []

    class Recording(TriggerManager):
        def _post_replay(self, task_instance: TaskInstance) -> None:
            seen.append(task_instance)

    manager = Recording(storage)
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.boom"}})
    manager.fire("a")
    manager.replay_failed_instance("t#0")
    assert [(i.name, i.metadata["parent"]) for i in seen] == [("t#1", "t#0")]


# -- skip ----------------------------------------------------------------------------------


def test_skip_without_cascade_resolves_the_instance_and_fires_nothing(
        failed: TriggerManager) -> None:
    skipped = failed.skip_failed_instance("t#0")
    settle()
    assert skipped.status == "skipped" and skipped.is_resolved
    assert skipped.metadata["cascade"] is False
    assert "result" not in skipped.metadata
    assert "down#0" not in failed.storage
    assert "t" not in failed.storage.latest_kwargs
    assert [c.name for c in failed.get_unresolved_tasks()] == ["down"]


def test_skip_with_cascade_simulates_the_result(failed: TriggerManager) -> None:
    skipped = failed.skip_failed_instance(failed.storage["t#0"], cascade=True,
                                          result={"subjectId": None})
    settle()
    assert skipped.metadata["cascade"] is True
    assert skipped.metadata["result"] == {"subjectId": None}
    assert failed.storage["down#0"].status == "finished"
    assert failed.storage["down#0"].kwargs == {"t": {"subjectId": None}}


def test_skip_with_cascade_and_no_result_fires_empty_kwargs(failed: TriggerManager) -> None:
    failed.skip_failed_instance("t#0", cascade=True)
    settle()
    assert failed.storage["down#0"].kwargs == {"t": {}}


@pytest.mark.parametrize("status", ["finished", "replayed", "skipped", "abandoned", "unstarted"])
def test_only_failed_instances_can_be_skipped(manager: TriggerManager, status: str) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.boom"}})
    manager.fire("a")
    manager.update_instance_status("t#0", status)
    with pytest.raises(InvalidStatusError, match=f"cannot skip t#0: it is {status}"):
        manager.skip_failed_instance("t#0", cascade=True)
    assert manager.storage["t#0"].status == status
    assert "t" not in manager.storage.latest_kwargs


def test_post_skip_hook_runs_after_the_cascade(storage: StorageBackend) -> None:
    seen: list[tuple[str, bool, dict[str, Any]]] = []

    class Recording(TriggerManager):
        def _post_skip(self, task_instance: TaskInstance, cascade: bool) -> None:
            seen.append((task_instance.status.value, cascade,
                         self.storage.latest_kwargs.get("t", {"not": "fired"})))

    manager = Recording(storage)
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.boom"},
                                  "u": {"after": ["b"], "run": "tests.boom"}})
    manager.fire("a")
    manager.fire("b")
    manager.skip_failed_instance("t#0", cascade=True, result={"r": 1})
    manager.skip_failed_instance("u#0")
    assert seen == [("skipped", True, {"r": 1}), ("skipped", False, {"r": 1})]


def test_replay_and_skip_return_what_is_stored(failed: TriggerManager) -> None:
    copy = failed.replay_failed_instance("t#0")
    settle()
    assert failed.storage["t#1"].metadata["parent"] == copy.metadata["parent"]
    skipped = failed.skip_failed_instance("t#1")
    assert failed.storage["t#1"] == skipped
