"""The public contract's own examples and the promises no narrower test covers.

Each test names the part of the contract it proves: the example of section 1
as written, every way to name an instance or a task, the signatures users
call by keyword, every signal's common arguments, the receivers of section 4.
"""

from __future__ import annotations

import gc
import inspect
import threading
from collections.abc import Callable
from typing import Any

import pytest
from blinker import ANY

from tests.helpers import settle
from triggerhooks import (
    InstanceNotFoundError,
    MemoryStorageBackend,
    SignalHandlingError,
    StatusChange,
    TaskInstance,
    TriggerManager,
    capture_signals,
    filter_events,
    on,
    trigger_task,
)
from triggerhooks.exceptions import with_context
from triggerhooks.signals import namespace, post_fire, session_finalized, task_completed
from triggerhooks.storages import StorageBackend
from triggerhooks.task import TaskContext, TriggerTask, trigger_tasks

pytestmark = pytest.mark.usefixtures("isolated_signals")


# -- section 1: the example, as written ------------------------------------------------------


class ImportSubject(TriggerTask):
    name = "tests.contract.ImportSubject"
    max_retries = 3

    def _run(self, context: TaskContext) -> dict[str, Any]:
        with context.get_logger_context({"app_version": "1.2"}) as logger:
            page = context.trigger_kwargs["firstPageReceived"]["responses"]
            if not page.get("givenNames"):
                logger.warning("Missing givenNames", extra={"context": {"page": page}})
            if page.get("spamScore", 0) > 0.5:
                raise with_context(ValueError("failed spam check"), {"score": 0.4})
            return {"subjectId": 42}


@trigger_task(name="tests.contract.import_responses")
def import_responses(context: TaskContext) -> dict[str, Any]:
    return {"page": context.trigger_kwargs["pageReceived"]}


@trigger_task(name="tests.contract.browser_metadata")
def browser_metadata(context: TaskContext) -> dict[str, Any]:
    return {"inAThread": threading.current_thread() is not threading.main_thread()}


CONFIGURATION: dict[str, Any] = {
    "t_importSubject": {
        "after": ["firstPageReceived", "questionnaireComplete"],
        "run": ImportSubject.name,
    },
    "t_importResponses": {
        "after": ["t_importSubject"],
        "andEvery": "pageReceived",
        "run": "tests.contract.import_responses",
    },
    "t_importBrowserMetadata": {
        "after": ["t_importSubject", "pageReceived"],
        "unless": ["isEmbeddedApplication"],
        "withParams": {"scoring": {"model": "Psych 01"}},
        "using": "threading",
        "notifyTeam": "ops",
        "run": "tests.contract.browser_metadata",
    },
}


def test_the_example_of_section_1_runs_as_written(storage: StorageBackend) -> None:
    manager = TriggerManager(storage)
    manager.update_configuration(CONFIGURATION)
    manager.fire("firstPageReceived", {"responses": {"givenNames": "Ada"}})
    manager.fire(trigger_name="questionnaireComplete", trigger_kwargs={})  # keyword form
    manager.fire(trigger_name="pageReceived", trigger_kwargs={"n": 1})
    settle()

    assert storage.latest_kwargs["questionnaireComplete"] == {}
    assert storage["t_importSubject#0"].metadata["result"] == {"subjectId": 42}
    responses = storage["t_importResponses#0"]
    assert responses.kwargs == {"t_importSubject": {"subjectId": 42}, "pageReceived": {"n": 1}}
    browser = storage["t_importBrowserMetadata#0"]
    assert browser.kwargs == {"t_importSubject": {"subjectId": 42}, "pageReceived": {"n": 1},
                              "scoring": {"model": "Psych 01"}}
    assert browser.metadata["result"] == {"inAThread": True}  # "using": "threading"
    config = storage.tasks["t_importBrowserMetadata"]
    assert (config.name, config.after, config.unless, config.and_every, config.run,
            config.using, config.with_params, config.extras) == (
        "t_importBrowserMetadata", ("t_importSubject", "pageReceived"),
        ("isEmbeddedApplication",), None, "tests.contract.browser_metadata", "threading",
        {"scoring": {"model": "Psych 01"}}, {"notifyTeam": "ops"})
    assert storage.tasks["t_importResponses"].and_every == "pageReceived"
    assert storage.is_finalized


def test_the_unless_of_the_example_abandons_the_browser_metadata(storage: StorageBackend) -> None:
    manager = TriggerManager(storage)
    manager.update_configuration(CONFIGURATION)
    manager.fire("isEmbeddedApplication")
    manager.fire("firstPageReceived", {"responses": {"givenNames": "Ada", "spamScore": 0.9}})
    manager.fire("questionnaireComplete")
    failed = storage["t_importSubject#0"]
    assert failed.status == "failed"
    assert failed.metadata["exceptionContext"] == {"score": 0.4}
    assert storage["t_importBrowserMetadata#0"].status == "abandoned"
    assert "t_importResponses#0" not in storage


# -- section 1: an instance argument is a name or a TaskInstance -------------------------------


@pytest.fixture
def failed(manager: TriggerManager) -> TriggerManager:
    """A session whose ``t#0`` failed."""
    manager.update_configuration({"t": {"andEvery": "a", "run": "tests.boom"}})
    manager.fire("a")
    assert manager.storage["t#0"].status == "failed"
    return manager


Call = Callable[[TriggerManager, Any], TaskInstance]

MANAGER_METHODS: dict[str, tuple[Call, Callable[[TaskInstance], bool]]] = {
    "replay_failed_instance": (lambda m, i: m.replay_failed_instance(i),
                               lambda t: t.status == "replayed"),
    "skip_failed_instance": (lambda m, i: m.skip_failed_instance(i),
                             lambda t: t.status == "skipped"),
    "update_instance_status": (lambda m, i: m.update_instance_status(i, "skipped", {"by": 1}),
                               lambda t: t.status == "skipped" and t.metadata["by"] == 1),
    "update_instance_metadata": (lambda m, i: m.update_instance_metadata(i, {"by": 1}),
                                 lambda t: t.status == "failed" and t.metadata["by"] == 1),
    "mark_instance_logs_resolved": (lambda m, i: m.mark_instance_logs_resolved(i),
                                    lambda t: t.logs_marked_resolved),
}


@pytest.mark.parametrize("form", ["name", "TaskInstance"])
@pytest.mark.parametrize("method", list(MANAGER_METHODS))
def test_every_manager_method_takes_an_instance_by_name_or_as_a_task_instance(
        failed: TriggerManager, method: str, form: str) -> None:
    call, changed = MANAGER_METHODS[method]
    instance = failed.storage["t#0"]
    call(failed, instance.name if form == "name" else instance)
    assert changed(failed.storage["t#0"])


@pytest.mark.parametrize("form", ["name", "TaskInstance"])
def test_storage_lookups_take_an_instance_by_name_or_as_a_task_instance(
        failed: TriggerManager, form: str) -> None:
    storage = failed.storage
    stored = storage["t#0"]
    here: Any = stored.name if form == "name" else stored
    missing: Any = "t#7" if form == "name" else TaskInstance("t#7")
    assert storage[here] == stored and storage.get(here) == stored and here in storage
    assert storage.get(missing) is None and missing not in storage
    with pytest.raises(InstanceNotFoundError, match="has no instance 't#7'"):
        storage[missing]


def test_a_task_argument_is_a_name_or_a_task_config(failed: TriggerManager) -> None:
    storage = failed.storage
    for task in ("t", storage.tasks["t"]):
        found = storage.instances_of_task(task)
        assert type(found) is list
        assert found == [storage["t#0"]]


# -- the signatures users call by keyword ------------------------------------------------------

REQUIRED = object()
ANY_DEFAULT = object()

SIGNATURES: list[tuple[Callable[..., Any], list[tuple[str, Any]]]] = [
    (TriggerManager.__init__, [("storage", REQUIRED)]),
    (MemoryStorageBackend.__init__, [("uid", REQUIRED)]),
    (TriggerManager.fire, [("trigger_name", REQUIRED), ("trigger_kwargs", None)]),
    (TriggerManager.replay_failed_instance, [("instance", REQUIRED),
                                             ("replacement_kwargs", None)]),
    (TriggerManager.skip_failed_instance, [("instance", REQUIRED), ("cascade", False),
                                           ("result", None)]),
    (TriggerManager.update_instance_status, [("instance", REQUIRED), ("status", REQUIRED),
                                             ("metadata", None), ("cascade", False),
                                             ("cascade_kwargs", None)]),
    (TriggerManager.update_instance_metadata, [("instance", REQUIRED), ("metadata", REQUIRED)]),
    (TriggerManager.mark_instance_logs_resolved, [("instance", REQUIRED)]),
    (TriggerManager.get_unresolved_tasks, []),
    (TriggerManager.get_unresolved_instances, []),
    (TriggerManager._post_fire, [("trigger_name", REQUIRED), ("tasks_scheduled", REQUIRED)]),
    (TriggerManager._post_replay, [("task_instance", REQUIRED)]),
    (TriggerManager._post_skip, [("task_instance", REQUIRED), ("cascade", REQUIRED)]),
    (StorageBackend.instances_of_task, [("task", REQUIRED)]),
    (StorageBackend.get_unresolved_tasks, []),
    (StorageBackend.get_unresolved_instances, []),
    (StorageBackend.get_instances_with_unresolved_logs, []),
    (StorageBackend.debug_repr, []),
    (TaskContext.get_logger_context, [("context", None), ("logger", None)]),
    (TriggerTask.retry, [("exc", ANY_DEFAULT), ("cooldown", ANY_DEFAULT),
                         ("replacement_kwargs", None)]),
    (StatusChange.__init__, [("status", REQUIRED), ("metadata", ANY_DEFAULT)]),
    (filter_events, [("predicate", REQUIRED)]),
]


@pytest.mark.parametrize(("function", "expected"), SIGNATURES,
                         ids=[f.__qualname__ for f, _ in SIGNATURES])
def test_the_signatures_of_the_contract(function: Callable[..., Any],
                                        expected: list[tuple[str, Any]]) -> None:
    """The contract's parameters come first, by name and default; any others are optional."""
    parameters = [p for p in inspect.signature(function).parameters.values()
                  if p.name != "self"]
    head, rest = parameters[:len(expected)], parameters[len(expected):]
    assert [p.name for p in head] == [name for name, _ in expected]
    for parameter, (name, default) in zip(head, expected, strict=True):
        assert parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY), name
        if default is REQUIRED:
            assert parameter.default is parameter.empty, name
        elif default is ANY_DEFAULT:
            assert parameter.default is not parameter.empty, name
        else:
            assert parameter.default == default, name
    assert all(p.default is not p.empty or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
               for p in rest)


def test_on_takes_a_signal_or_a_list_a_sender_and_raise_exception() -> None:
    _, sender, raise_exception, *_ = inspect.signature(on).parameters.values()
    assert (sender.name, sender.default) == ("sender", ANY)
    assert (raise_exception.name, raise_exception.default) == ("raise_exception", False)


# -- section 4: the receivers of the example, and every signal's arguments --------------------


def test_the_receivers_of_section_4(manager: TriggerManager) -> None:
    notified: list[tuple[str, dict[str, Any]]] = []
    audited: list[tuple[Any, str | None]] = []

    @on(task_completed, sender=ImportSubject)
    @filter_events(lambda task_instance: task_instance.name.endswith("#0"))
    def notify(sender: Any, task_instance: TaskInstance, result: dict[str, Any],
               **kwargs: Any) -> None:
        notified.append((task_instance.name, result))

    @on([post_fire, session_finalized], raise_exception=True)
    def audit(sender: Any, manager: TriggerManager, **kwargs: Any) -> None:
        audited.append((sender, kwargs.get("trigger_name")))
        if "trigger_name" not in kwargs:
            raise RuntimeError(f"{manager.storage.uid} finalized")

    manager.update_configuration({
        "t_subject": {"after": ["firstPageReceived"], "andEvery": "page",
                      "run": ImportSubject.name},
        "t_other": {"after": ["firstPageReceived"], "run": "tests.echo"},
    })
    manager.fire("firstPageReceived", {"responses": {"givenNames": "Ada"}})
    with pytest.raises(SignalHandlingError) as caught:
        manager.fire("page")  # t_subject#0 runs: every task is resolved
    manager.fire("page")

    assert notified == [("t_subject#0", {"subjectId": 42})]  # #1 is filtered out
    assert [type(e) for e in caught.value.caught_exceptions] == [RuntimeError]
    assert str(caught.value) == f"{manager.storage.uid} finalized"
    assert manager.storage.is_finalized  # a post signal's error changes nothing stored
    assert manager.storage["t_subject#1"].status == "finished"
    assert [name for _, name in audited] == [
        "firstPageReceived", "t_other", "page", "t_subject", "sessionFinalized", None,
        "page", "t_subject"]
    assert all(sender is TriggerManager for sender, _ in audited)


SESSION_SIGNALS = {"pre_fire", "post_fire", "session_finalized", "configuration_updated"}


def test_every_signal_passes_manager_and_session_uid(manager: TriggerManager) -> None:
    with capture_signals() as sent:
        manager.update_configuration({
            "ok": {"after": ["go"], "run": "tests.noop"},
            "bad": {"after": ["go"], "run": "tests.boom"},
            "vetoed": {"after": ["never"], "unless": ["stop"], "run": "tests.noop"},
        })
        manager.fire("go")
        manager.fire("stop")
        manager.replay_failed_instance("bad#0")
        manager.skip_failed_instance("bad#1", cascade=True)
    assert manager.storage.is_finalized
    assert set(sent.names) == set(namespace)  # every signal was sent at least once
    uid = manager.storage.uid
    for signal in sent:
        assert signal["manager"] is manager and signal["session_uid"] == uid, signal.name
        if signal.name in SESSION_SIGNALS:
            assert signal.sender is TriggerManager, signal.name
        else:
            task = manager.storage.tasks[signal["task_instance"].task_name]
            assert signal.sender is trigger_tasks.get_class(task.run), signal.name


def test_receivers_are_connected_strongly(manager: TriggerManager) -> None:
    calls: list[str] = []

    def connect() -> None:
        @on(post_fire)
        def closure(sender: Any, trigger_name: str, **kwargs: Any) -> None:
            calls.append(trigger_name)

    connect()
    gc.collect()
    manager.fire("a")
    assert calls == ["a"]
