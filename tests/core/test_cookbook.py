"""The seed cookbook's recipes, run as written (triggers -> triggerhooks, cache -> memory)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.helpers import settle
from triggerhooks import SESSION_FINALIZED, TriggerManager, trigger_task
from triggerhooks.manager import trigger_managers
from triggerhooks.signals import post_fire, session_finalized
from triggerhooks.storages import StorageBackend, storage_backends
from triggerhooks.task import TaskContext
from triggerhooks.testing.signals import connected

# -- Setting the Manager/Storage Type at Runtime ---------------------------------------------

TRIGGER_MANAGER_TYPE = "default"
TRIGGER_STORAGE_TYPE = "memory"


def get_trigger_manager(uid):  # type: ignore[no-untyped-def]
    # type: (str) -> TriggerManager
    """
    Given a session UID, returns a configured trigger manager.
    """
    storage = storage_backends.get(TRIGGER_STORAGE_TYPE, uid)
    manager = trigger_managers.get(TRIGGER_MANAGER_TYPE, storage)

    return manager


def test_choosing_manager_and_storage_from_settings(monkeypatch: pytest.MonkeyPatch,
                                                    finalizing: None) -> None:
    manager = get_trigger_manager("cookbook-runtime")
    try:
        assert type(manager) is TriggerManager
        assert type(manager.storage) is storage_backends.get_class("memory")
        manager.update_configuration({"t": {"after": ["a"], "run": "tests.echo"}})
        manager.fire("a")
        assert get_trigger_manager("cookbook-runtime").storage["t#0"].status == "finished"

        monkeypatch.setattr(sys.modules[__name__], "TRIGGER_MANAGER_TYPE", "test-finalizing")
        assert type(get_trigger_manager("cookbook-runtime")) is FinalizingTriggerManager
    finally:
        manager.storage.clear()


# -- Finalizing a Session (exactly as in the cookbook) -------------------------------------------


class FinalizingTriggerManager(TriggerManager):
  TRIGGER_SESSION_FINALIZED = "sessionFinalized"

  def _post_fire(self, trigger_name, tasks_scheduled):
    # Prevent infinite recursion.
    if trigger_name == self.TRIGGER_SESSION_FINALIZED:
      return

    # A session can only be finalized once.
    if self.TRIGGER_SESSION_FINALIZED in self.storage.latest_kwargs:
      return

    # Check for any unresolved tasks...
    for config in self.get_unresolved_tasks():
      # ... ignoring any that are waiting for session finalized.
      if self.TRIGGER_SESSION_FINALIZED not in config.after:
        return

    # If we get here, we are ready to finalize the session.
    self.fire(self.TRIGGER_SESSION_FINALIZED)


@pytest.fixture
def finalizing() -> Iterator[None]:
    """Don't forget to register your trigger manager!"""
    trigger_managers.register("test-finalizing")(FinalizingTriggerManager)
    try:
        yield
    finally:
        trigger_managers.unregister("test-finalizing")


@pytest.fixture
def finalizations() -> Iterator[list[str]]:
    """Session uids, once per ``session_finalized`` signal and per stored firing of it."""
    seen: list[str] = []

    def on_finalized(sender: Any, session_uid: str, **kwargs: Any) -> None:
        seen.append(f"signal {session_uid}")

    def on_fire(sender: Any, session_uid: str, trigger_name: str, **kwargs: Any) -> None:
        if trigger_name == SESSION_FINALIZED:
            seen.append(f"fire {session_uid}")

    with connected(on_finalized, session_finalized), connected(on_fire, post_fire):
        yield seen


WORKFLOW = {
    "t_importSubject": {"after": ["firstPageReceived", "questionnaireComplete"],
                        "run": "tests.echo"},
    "t_importResponses": {"after": ["t_importSubject"], "andEvery": "pageReceived",
                          "run": "tests.noop"},
    "t_setStatusFlag": {"after": ["sessionFinalized"], "run": "tests.echo"},
}


def test_the_finalizing_manager_fires_session_finalized_once(
        finalizing: None, storage: StorageBackend, runner_name: str,
        finalizations: list[str]) -> None:
    manager = trigger_managers.get("test-finalizing", storage, task_runner=runner_name)
    manager.update_configuration(WORKFLOW)
    manager.fire("firstPageReceived")
    manager.fire("pageReceived", {"page": 1})
    settle()
    assert "sessionFinalized" not in manager.storage.latest_kwargs
    manager.fire("questionnaireComplete")
    settle()
    manager.fire("pageReceived", {"page": 2})
    settle()
    assert [i.status for i in manager.storage.instances_of_task("t_setStatusFlag")] == [
        "finished"]
    assert finalizations == [f"fire {storage.uid}", f"signal {storage.uid}"]
    assert "finalizedAt" in manager.storage.metadata
    assert manager.get_unresolved_tasks() == []


def test_a_failed_task_holds_finalization_until_it_is_skipped(
        finalizing: None, storage: StorageBackend, finalizations: list[str]) -> None:
    manager = FinalizingTriggerManager(storage)
    manager.update_configuration({
        "t_fails": {"after": ["a"], "run": "tests.boom"},
        "t_final": {"after": ["sessionFinalized"], "run": "tests.echo"},
    })
    manager.fire("a")
    assert finalizations == []
    assert "t_final#0" not in manager.storage
    manager.skip_failed_instance("t_fails#0")
    assert manager.storage["t_final#0"].status == "finished"
    assert finalizations == [f"fire {storage.uid}", f"signal {storage.uid}"]


# -- Namespaced Session UIDs ---------------------------------------------------------------------

_compared: list[dict[str, Any]] = []


@trigger_task(name="cookbook.CompareResponses")
def compare_responses(context: TaskContext) -> dict[str, Any]:
    _compared.append(dict(context.trigger_kwargs))
    return {"compared": sorted(context.trigger_kwargs)}


class Application:
    """The Django views of the recipe, with the storage fixture in place of the cache."""

    def __init__(self, make_storage: Callable[[str], StorageBackend], applicant_id: int) -> None:
        self.make_storage = make_storage
        self.applicant_id = applicant_id

    def start_questionnaire(self, questionnaire: str) -> None:
        # Prepare our regular triggers session for the questionnaire.
        trigger_manager = TriggerManager(self.make_storage(f"{questionnaire}:{self.applicant_id}"))
        trigger_manager.update_configuration({
            "t_importPage": {"andEvery": "pageReceived", "run": "tests.noop"},
        })

        # Prepare our "super session", which will maintain state across
        # multiple questionnaires. The UID is tied to the applicant, with a
        # prefix to avoid conflicts with regular session UIDs.
        super_trigger_manager = TriggerManager(
            storage=self.make_storage(f"applicant:{self.applicant_id}"),
        )
        super_trigger_manager.update_configuration({
            # Runs after page 3 of Flora and page 6 of Fauna, in either order.
            "t_compareResponses": {
                "after": ["flora_page3", "fauna_page6"],
                "run": "cookbook.CompareResponses",
            },
        })

    def responses(self, questionnaire: str, page_number: int, data: dict[str, Any]) -> None:
        # Regular triggers session for the questionnaire.
        trigger_manager = TriggerManager(self.make_storage(f"{questionnaire}:{self.applicant_id}"))
        trigger_manager.fire("pageReceived", {"responses": data})

        # Fire triggers for "super session".
        super_trigger_manager = TriggerManager(
            storage=self.make_storage(f"applicant:{self.applicant_id}"),
        )
        super_trigger_manager.fire(
            trigger_name=f"{questionnaire}_page{page_number}",
            trigger_kwargs={"responses": data},
        )


def test_namespaced_session_uids(make_storage: Callable[[str], StorageBackend]) -> None:
    _compared.clear()
    app = Application(make_storage, applicant_id=7)
    app.start_questionnaire("flora")
    app.start_questionnaire("fauna")
    for page in range(1, 7):
        app.responses("fauna", page, {"fauna": page})
        if page <= 3:
            app.responses("flora", page, {"flora": page})
    assert _compared == [{"flora_page3": {"responses": {"flora": 3}},
                          "fauna_page6": {"responses": {"fauna": 6}}}]
    super_session = make_storage("applicant:7")
    assert super_session["t_compareResponses#0"].metadata["result"] == {
        "compared": ["fauna_page6", "flora_page3"]}
    assert len(make_storage("fauna:7").instances_of_task("t_importPage")) == 6
    assert len(make_storage("flora:7").instances_of_task("t_importPage")) == 3
    assert "t_compareResponses" not in make_storage("flora:7").tasks
