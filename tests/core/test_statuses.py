"""The eight statuses, the meta-statuses, timestamps, and changing statuses by hand."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import orjson
import pytest

from tests.helpers import settle
from triggerhooks import (
    InstanceNotFoundError,
    InvalidStatusError,
    TaskInstance,
    TaskStatus,
    TriggerhooksError,
    TriggerManager,
    UnstorableKwargsError,
)
from triggerhooks.storages import StorageBackend
from triggerhooks.testing import HoldingRunner

# status: (is_resolved, can_run, can_replay, can_skip, can_abandon)
META = {
    "unstarted": (False, True, False, False, True),
    "scheduled": (False, True, False, False, True),
    "running": (False, False, False, False, False),
    "finished": (True, False, False, False, False),
    "failed": (False, False, True, True, False),
    "replayed": (True, False, False, False, False),
    "skipped": (True, False, False, False, False),
    "abandoned": (True, False, False, False, False),
}


def test_there_are_exactly_eight_statuses() -> None:
    assert [s.value for s in TaskStatus] == list(META)
    assert all(TaskStatus(value) == value for value in META)


@pytest.mark.parametrize("status", list(META))
def test_meta_statuses(status: str) -> None:
    instance = TaskInstance("t#0", TaskStatus(status))
    assert (instance.is_resolved, instance.can_run, instance.can_replay, instance.can_skip,
            instance.can_abandon) == META[status]


def test_instance_names_and_parts() -> None:
    instance = TaskInstance("t_import#12")
    assert (instance.task_name, instance.index) == ("t_import", 12)
    assert instance.status == "unstarted"
    assert repr(instance) == "<TaskInstance t_import#12 unstarted>"


@pytest.mark.parametrize("status", list(META))
def test_instances_round_trip_through_json(status: str) -> None:
    instance = TaskInstance("t#3", TaskStatus(status), {"a": {"x": 1}}, {"result": {"y": 2}},
                            logging.ERROR, True)
    assert TaskInstance.from_json("t#3", orjson.loads(orjson.dumps(instance.to_json()))) == instance


def _timestamps(instance: TaskInstance) -> dict[str, datetime]:
    return {status: datetime.fromisoformat(value)
            for status, value in instance.metadata["timestamps"].items()}


def test_a_run_goes_scheduled_running_finished_with_a_timestamp_each(
        any_manager: TriggerManager) -> None:
    any_manager.update_configuration({"t": {"after": ["a"], "run": "tests.noop"}})
    before = datetime.now().astimezone()
    any_manager.fire("a")
    settle()
    stamps = _timestamps(any_manager.storage["t#0"])
    assert list(stamps) == ["unstarted", "scheduled", "running", "finished"]
    assert all(s.utcoffset() == timedelta(0) for s in stamps.values())  # aware UTC
    assert before <= stamps["unstarted"] <= stamps["scheduled"] <= stamps["running"]
    assert stamps["running"] <= stamps["finished"]


def test_a_waiting_and_every_instance_is_unstarted(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a"], "andEvery": "p", "run": "tests.noop"}})
    manager.fire("p")
    instance = manager.storage["t#0"]
    assert instance.status == "unstarted"
    assert list(instance.metadata["timestamps"]) == ["unstarted"]
    manager.fire("a")
    assert list(manager.storage["t#0"].metadata["timestamps"]) == [
        "unstarted", "scheduled", "running", "finished"]


def test_a_failing_task_ends_failed(any_manager: TriggerManager) -> None:
    any_manager.update_configuration({"t": {"after": ["a"], "run": "tests.boom"}})
    any_manager.fire("a")
    settle()
    instance = any_manager.storage["t#0"]
    assert instance.status == "failed"
    assert list(instance.metadata["timestamps"]) == ["unstarted", "scheduled", "running",
                                                     "failed"]
    assert not instance.is_resolved


def test_scheduled_stays_until_the_runner_starts_the_instance(
        manager: TriggerManager, held: type[HoldingRunner]) -> None:
    manager.update_configuration({"t": {"after": ["a"], "using": "held", "run": "tests.noop"}})
    manager.fire("a")
    assert manager.storage["t#0"].status == "scheduled"
    assert [i.name for i in manager.get_unresolved_instances()] == ["t#0"]
    held.release()
    assert manager.storage["t#0"].status == "finished"


def test_executing_an_instance_twice_runs_it_once(manager: TriggerManager,
                                                  held: type[HoldingRunner]) -> None:
    manager.update_configuration({"t": {"after": ["a"], "using": "held", "run": "tests.noop"}})
    manager.fire("a")
    first = manager.execute("t#0")
    assert first is not None and first.status == "finished"
    assert manager.execute("t#0") is None
    assert manager.storage["t#0"].metadata["timestamps"].keys() == {
        "unstarted", "scheduled", "running", "finished"}


# -- update_instance_status ------------------------------------------------------------------


@pytest.fixture
def failed(manager: TriggerManager) -> TriggerManager:
    """A session with ``t#0`` failed and ``down`` waiting for ``t``."""
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.boom"},
                                  "down": {"after": ["t"], "run": "tests.echo"}})
    manager.fire("a")
    assert manager.storage["t#0"].status == "failed"
    return manager


@pytest.mark.parametrize("status", list(META))
def test_update_instance_status_sets_any_status(failed: TriggerManager, status: str) -> None:
    updated = failed.update_instance_status("t#0", status, metadata={"by": "hand"})
    stored = failed.storage["t#0"]
    assert stored == updated or status == "scheduled"  # scheduled is handed to the runner
    if status != "scheduled":
        assert stored.status == status
        assert stored.metadata["by"] == "hand"
        assert status in stored.metadata["timestamps"]


def test_update_instance_status_to_scheduled_hands_the_instance_to_its_runner(
        failed: TriggerManager) -> None:
    failed.update_instance_status("t#0", "scheduled")
    assert failed.storage["t#0"].status == "failed"  # it ran (inline) and failed again
    assert failed.storage["t#0"].metadata["timestamps"].keys() == {
        "unstarted", "scheduled", "running", "failed"}


def test_update_instance_status_with_cascade_fires_the_task_name(failed: TriggerManager) -> None:
    failed.update_instance_status("t#0", "finished", cascade=True,
                                  cascade_kwargs={"fixed": True})
    t = failed.storage["t#0"]
    assert (t.status, t.metadata["result"]) == ("finished", {"fixed": True})
    assert failed.storage["down#0"].kwargs == {"t": {"fixed": True}}
    assert failed.storage["down#0"].status == "finished"


def test_update_instance_status_without_cascade_fires_nothing(failed: TriggerManager) -> None:
    failed.update_instance_status("t#0", TaskStatus.FINISHED)
    t = failed.storage["t#0"]
    assert (t.status, t.metadata["result"]) == ("finished", {})
    assert "down#0" not in failed.storage
    assert "t" not in failed.storage.latest_kwargs


def test_update_instance_status_accepts_an_instance(failed: TriggerManager) -> None:
    instance = failed.storage["t#0"]
    assert failed.update_instance_status(instance, "skipped").status == "skipped"


def test_update_instance_status_rejects_an_unknown_status(failed: TriggerManager) -> None:
    with pytest.raises(InvalidStatusError, match="unknown status 'done'; expected one of "
                                                  "unstarted, scheduled, running, finished"):
        failed.update_instance_status("t#0", "done")
    assert failed.storage["t#0"].status == "failed"


def test_update_instance_metadata_merges_and_keeps_the_status(failed: TriggerManager) -> None:
    failed.update_instance_metadata("t#0", {"ticket": 7})
    failed.update_instance_metadata("t#0", {"note": "seen"})
    instance = failed.storage["t#0"]
    assert instance.status == "failed"
    assert (instance.metadata["ticket"], instance.metadata["note"]) == (7, "seen")
    assert instance.metadata["exceptionType"] == "ValueError"


@pytest.mark.parametrize("metadata", [
    {"timestamps": "overwritten"}, {"timestamps": {"scheduled": "not a time"}},
    {"claim": {"token": "t"}}, {"due": "tomorrow"}, {"recovered": {"at": 1}}])
def test_metadata_by_hand_cannot_overwrite_the_bookkeeping(
        manager: TriggerManager, held: type[HoldingRunner], metadata: dict[str, object]) -> None:
    """Overwritten, it broke every later change of the instance (a TypeError when claimed,
    replayed or skipped) and every recovery of the session; now refused, nothing stored."""
    manager.update_configuration({"t": {"after": ["a"], "using": "held", "run": "tests.noop"}})
    manager.fire("a")
    before = manager.storage["t#0"]
    [key] = metadata
    with pytest.raises(UnstorableKwargsError, match=f"'{key}' is triggerhooks' own"):
        manager.update_instance_metadata("t#0", metadata)
    with pytest.raises(UnstorableKwargsError, match=f"'{key}' is triggerhooks' own"):
        manager.update_instance_status("t#0", "scheduled", metadata)
    assert manager.storage["t#0"] == before
    assert manager.stuck() == []
    held.release()
    assert manager.storage["t#0"].status == "finished"


# -- looking at a session --------------------------------------------------------------------


def test_unresolved_tasks_and_instances(any_manager: TriggerManager) -> None:
    any_manager.update_configuration({
        "ok": {"after": ["a"], "run": "tests.noop"},
        "bad": {"after": ["a"], "run": "tests.boom"},
        "later": {"after": ["b"], "run": "tests.noop"},
    })
    assert {c.name for c in any_manager.get_unresolved_tasks()} == {"ok", "bad", "later"}
    any_manager.fire("a")
    settle()
    assert {c.name for c in any_manager.get_unresolved_tasks()} == {"bad", "later"}
    assert [i.name for i in any_manager.get_unresolved_instances()] == ["bad#0"]
    assert any_manager.storage.get_unresolved_tasks() == any_manager.get_unresolved_tasks()
    any_manager.skip_failed_instance("bad#0")
    settle()
    assert [c.name for c in any_manager.get_unresolved_tasks()] == ["later"]
    assert any_manager.get_unresolved_instances() == []


def test_reading_instances_from_the_storage(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"andEvery": "p", "run": "tests.noop"},
                                  "u": {"after": ["p"], "run": "tests.noop"}})
    manager.fire("p")
    manager.fire("p")
    storage = manager.storage
    assert [i.name for i in storage] == ["t#0", "u#0", "t#1"]
    assert sorted(storage.instances) == ["t#0", "t#1", "u#0"]
    assert [i.name for i in storage.instances_of_task("t")] == ["t#0", "t#1"]
    assert storage.instances_of_task(storage.tasks["u"]) == [storage["u#0"]]
    assert storage.instances_of_task("nope") == []
    assert "t#1" in storage and "t#2" not in storage and 42 not in storage
    assert storage.get("t#2") is None
    assert len(storage) == 3
    with pytest.raises(InstanceNotFoundError, match="has no instance 't#2'"):
        storage["t#2"]


@pytest.mark.parametrize("name", ["t", "t#", "#0", "t#x", ""])
def test_malformed_instance_names_are_rejected(manager: TriggerManager, name: str) -> None:
    with pytest.raises(InstanceNotFoundError, match="not a task instance name") as caught:
        manager.update_instance_status(name, "finished")
    assert isinstance(caught.value, TriggerhooksError)


def test_a_missing_instance_is_reported(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.noop"}})
    with pytest.raises(InstanceNotFoundError, match="no task instance named 't#5'"):
        manager.update_instance_metadata("t#5", {"x": 1})


def test_debug_repr_is_plain_json(manager: TriggerManager, storage: StorageBackend) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.echo", "team": "ops"}})
    manager.fire("a", {"x": 1})
    data = manager.debug_repr()
    assert orjson.loads(orjson.dumps(data)) == data
    assert data["uid"] == storage.uid
    assert data["manager"] == "triggerhooks.manager.TriggerManager"
    assert data["tasks"]["t"] == {"run": "tests.echo", "after": ["a"], "team": "ops"}
    assert data["instances"]["t#0"]["status"] == "finished"
    assert data["latestKwargs"] == {"a": {"x": 1}, "t": {"received": {"a": {"x": 1}}},
                                    "sessionFinalized": {}}
    assert storage.debug_repr().items() <= data.items()


def test_session_metadata_records_creation_and_finalization(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.noop"}})
    created = manager.storage.metadata["createdAt"]
    manager.update_configuration({"u": {"after": ["a"], "run": "tests.noop"}})
    assert manager.storage.metadata == {"createdAt": created}
    manager.fire("a")
    metadata = manager.storage.metadata
    assert metadata["createdAt"] == created
    assert datetime.fromisoformat(metadata["finalizedAt"]) >= datetime.fromisoformat(created)
