"""Trigger tasks: definition and registration, results, failures, retries, StatusChange, context."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from pydantic import BaseModel

from tests.helpers import settle
from triggerhooks import (
    MaxRetriesExceeded,
    StatusChange,
    TaskContext,
    TaskStatus,
    TriggerhooksError,
    TriggerManager,
    TriggerTask,
    trigger_task,
    trigger_tasks,
    with_context,
)
from triggerhooks.exceptions import InvalidStatusError
from triggerhooks.storages import StorageBackend


class ImportSubject(TriggerTask):
    name = "test_tasks.ImportSubject"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        page = context.trigger_kwargs["firstPageReceived"]["responses"]
        if page.get("spam"):
            raise with_context(ValueError("failed spam check"), {"score": 0.4})
        return {"subjectId": 42}


class DefaultName(TriggerTask):
    def _run(self, context: TaskContext) -> None:
        return None


class NotRegistered(TriggerTask, register=False):
    name = "test_tasks.not_registered"

    def _run(self, context: TaskContext) -> None:
        return None


@trigger_task
def plain_function(context: TaskContext) -> dict[str, Any]:
    return {"uid": context.session_uid}


@trigger_task(name="test_tasks.returns", max_retries=5)
def returns(context: TaskContext) -> Any:
    """Returns whatever ``value`` the trigger ``a`` carries (``NOTHING`` for None)."""
    value = context.trigger_kwargs["a"]["value"]
    return {"set": {"s": {1, 2}}, "date": {"d": datetime(2024, 1, 1)}, "list": [1]}.get(value, value)


@trigger_task(name="test_tasks.sees_context")
def sees_context(context: TaskContext) -> dict[str, Any]:
    return {
        "manager": type(context.manager).__name__,
        "instance": context.task_instance.name,
        "status": context.task_instance.status.value,
        "uid": context.session_uid,
        "kwargs": context.trigger_kwargs,
        "task": type(context.task).name,
    }


@trigger_task(name="test_tasks.ends_with")
def ends_with(context: TaskContext) -> StatusChange:
    settings = context.trigger_kwargs["a"]
    change = StatusChange(settings["status"], {"why": "chosen"},
                          cascade=settings.get("cascade", False),
                          cascade_kwargs=settings.get("cascade_kwargs"))
    if settings.get("raise"):
        raise change
    return change


@pytest.fixture
def configured(any_manager: TriggerManager) -> Iterator[TriggerManager]:
    yield any_manager
    settle()


# -- definition and registration -------------------------------------------------------------


def test_subclasses_register_under_their_name() -> None:
    assert trigger_tasks.get_class("test_tasks.ImportSubject") is ImportSubject
    assert isinstance(trigger_tasks.get("test_tasks.ImportSubject"), ImportSubject)


def test_the_default_name_is_module_and_qualified_name() -> None:
    assert DefaultName.name == "tests.core.test_tasks.DefaultName"
    assert trigger_tasks.get_class("tests.core.test_tasks.DefaultName") is DefaultName


def test_register_false_keeps_a_class_out_of_the_registry() -> None:
    assert "test_tasks.not_registered" not in trigger_tasks


def test_function_tasks_are_registered_and_returned_unchanged() -> None:
    cls = plain_function.__trigger_task__  # type: ignore[attr-defined]
    assert cls.name == "tests.core.test_tasks.plain_function"
    assert trigger_tasks.get_class(cls.name) is cls
    assert returns.__trigger_task__.max_retries == 5  # type: ignore[attr-defined]
    assert plain_function.__name__ == "plain_function"


@pytest.mark.parametrize("count", ["3", None, 2.5, -1, True])
def test_a_max_retries_that_is_not_a_count_is_refused_when_the_task_is_defined(
        count: Any) -> None:
    """Not at the first retry(), where it failed the instance with a TypeError comparing
    the retries so far with it; nothing is registered."""
    with pytest.raises(TypeError, match=r"max_retries of task 'test_tasks\.bad_max_retries' is "
                                        r"how many times it may retry: an int from 0"):
        @trigger_task(name="test_tasks.bad_max_retries", max_retries=count)
        def bad_max_retries(context: TaskContext) -> None: ...

    with pytest.raises(TypeError, match="an int from 0"):
        class BadMaxRetries(TriggerTask):
            name = "test_tasks.bad_max_retries"
            max_retries = count

            def _run(self, context: TaskContext) -> None: ...

    assert "test_tasks.bad_max_retries" not in trigger_tasks


def test_a_class_task_runs_with_the_trigger_kwargs(configured: TriggerManager) -> None:
    configured.update_configuration({"t": {"after": ["firstPageReceived"],
                                           "run": "test_tasks.ImportSubject"}})
    configured.fire("firstPageReceived", {"responses": {"givenNames": "Ada"}})
    settle()
    assert configured.storage["t#0"].metadata["result"] == {"subjectId": 42}


def test_a_function_task_runs(configured: TriggerManager) -> None:
    configured.update_configuration({"t": {"after": ["a"],
                                           "run": "tests.core.test_tasks.plain_function"}})
    configured.fire("a")
    settle()
    assert configured.storage["t#0"].metadata["result"] == {"uid": configured.storage.uid}


def test_the_task_context(configured: TriggerManager) -> None:
    configured.update_configuration({"t": {"after": ["a"], "run": "test_tasks.sees_context",
                                           "withParams": {"x": {"y": 1}}}})
    configured.fire("a", {"n": 1})
    settle()
    assert configured.storage["t#0"].metadata["result"] == {
        "manager": "TriggerManager", "instance": "t#0", "status": "running",
        "uid": configured.storage.uid, "kwargs": {"a": {"n": 1}, "x": {"y": 1}},
        "task": "test_tasks.sees_context"}


# -- results -----------------------------------------------------------------------------------


def test_returning_none_finishes_with_an_empty_result(configured: TriggerManager) -> None:
    configured.update_configuration({"t": {"after": ["a"], "run": "test_tasks.returns"},
                                     "down": {"after": ["t"], "run": "tests.echo"}})
    configured.fire("a", {"value": None})
    settle()
    assert configured.storage["t#0"].metadata["result"] == {}
    assert configured.storage["down#0"].kwargs == {"t": {}}


@pytest.mark.parametrize(("value", "message"), [
    ("list", "task 'test_tasks.returns' returned list; a trigger task must return a mapping"),
    (42, "returned int; a trigger task must return a mapping"),
    ("text", "returned str; a trigger task must return a mapping"),
    ("set", "result of t#0 cannot be stored as JSON"),
    ("date", "result of t#0 cannot be stored as JSON"),
])
def test_a_result_that_is_not_a_json_mapping_fails_the_instance(
        configured: TriggerManager, value: Any, message: str) -> None:
    configured.update_configuration({"t": {"after": ["a"], "run": "test_tasks.returns"},
                                     "down": {"after": ["t"], "run": "tests.echo"}})
    configured.fire("a", {"value": value})
    settle()
    instance = configured.storage["t#0"]
    assert instance.status == "failed"
    assert instance.metadata["exceptionType"] == "triggerhooks.exceptions.InvalidTaskResultError"
    assert message in instance.metadata["exceptionInfo"]
    assert "down#0" not in configured.storage


def test_a_task_exception_fails_the_instance_and_is_never_raised(
        configured: TriggerManager) -> None:
    configured.update_configuration({"t": {"after": ["firstPageReceived"],
                                           "run": "test_tasks.ImportSubject"}})
    configured.fire("firstPageReceived", {"responses": {"spam": True}})  # does not raise
    settle()
    meta = configured.storage["t#0"].metadata
    assert configured.storage["t#0"].status == "failed"
    assert meta["exceptionType"] == "ValueError"
    assert "Traceback (most recent call last)" in meta["exceptionInfo"]
    assert "ValueError: failed spam check" in meta["exceptionInfo"]
    assert meta["exceptionContext"] == {"score": 0.4}


class Unprintable(Exception):
    """An exception whose ``str()`` fails."""

    def __str__(self) -> str:
        raise RuntimeError("str() of this exception fails")


@trigger_task(name="test_tasks.raises_unprintable")
def raises_unprintable(context: TaskContext) -> None:
    if context.trigger_kwargs["a"].get("inside"):
        with context.get_logger_context():
            raise Unprintable()
    raise Unprintable()


@pytest.mark.parametrize("inside", [False, True])
def test_an_exception_whose_str_fails_fails_the_instance(configured: TriggerManager,
                                                         caplog: pytest.LogCaptureFixture,
                                                         inside: bool) -> None:
    """Logged (pytest's log capture raises on a log call it cannot format) and stored as
    Python's tracebacks show it, instead of leaving the instance running."""
    configured.update_configuration({"t": {"after": ["a"], "run": "test_tasks.raises_unprintable"}})
    configured.fire("a", {"inside": inside})
    settle()
    instance = configured.storage["t#0"]
    assert instance.status == "failed"
    assert instance.metadata["exceptionType"].endswith("Unprintable")
    assert "<exception str() failed>" in caplog.text


def test_a_builtin_exception_type_is_its_bare_name(configured: TriggerManager) -> None:
    configured.update_configuration({"u": {"after": ["b"], "run": "test_tasks.ends_with"}})
    configured.fire("b")  # ends_with reads trigger_kwargs["a"]: KeyError
    settle()
    assert configured.storage["u#0"].metadata["exceptionType"] == "KeyError"
    assert configured.storage["u#0"].metadata["exceptionContext"] is None


def test_an_unregistered_task_fails_its_instance_with_the_known_keys(
        manager: TriggerManager) -> None:
    @trigger_task(name="test_tasks.short_lived")
    def short_lived(context: TaskContext) -> None:
        return None

    manager.update_configuration({"t": {"after": ["a"], "run": "test_tasks.short_lived"}})
    trigger_tasks.unregister("test_tasks.short_lived")
    manager.fire("a")
    meta = manager.storage["t#0"].metadata
    assert manager.storage["t#0"].status == "failed"
    assert meta["exceptionType"] == "triggerhooks.exceptions.UnknownKeyError"
    assert "unknown trigger task 'test_tasks.short_lived'; known: " in meta["exceptionInfo"]


def test_a_base_exception_fails_the_instance_and_propagates(manager: TriggerManager) -> None:
    @trigger_task(name="test_tasks.interrupted")
    def interrupted(context: TaskContext) -> None:
        raise KeyboardInterrupt

    manager.update_configuration({"t": {"after": ["a"], "run": "test_tasks.interrupted"},
                                  "u": {"after": ["a"], "run": "tests.noop"}})
    with pytest.raises(KeyboardInterrupt):
        manager.fire("a")
    assert manager.storage["t#0"].status == "failed"
    assert manager.storage["t#0"].metadata["exceptionType"] == "KeyboardInterrupt"
    assert manager.storage["u#0"].status == "scheduled"  # the interrupted queue is dropped
    manager.update_instance_status("u#0", "scheduled")  # hands it off again
    assert manager.storage["u#0"].status == "finished"


# -- retries -----------------------------------------------------------------------------------


def test_retry_fails_the_instance_and_replays_it_until_it_succeeds(
        configured: TriggerManager) -> None:
    configured.update_configuration({"t": {"after": ["a"], "run": "tests.flaky"},
                                     "down": {"after": ["t"], "run": "tests.echo"}})
    configured.fire("a", {"failures": 2})
    settle()
    instances = configured.storage.instances_of_task("t")
    assert [i.status for i in instances] == ["replayed", "replayed", "finished"]
    assert [i.metadata.get("parent") for i in instances] == [None, "t#0", "t#1"]
    assert [i.metadata.get("retries") for i in instances] == [None, 1, 2]
    assert instances[0].metadata["exceptionType"] == "ValueError"
    assert "attempt 0 failed" in instances[0].metadata["exceptionInfo"]
    assert instances[2].metadata["result"] == {"attempts": 3}
    assert all(i.kwargs == {"a": {"failures": 2}} for i in instances)
    assert configured.storage["down#0"].kwargs == {"t": {"attempts": 3}}


def test_retry_gives_up_after_max_retries(configured: TriggerManager) -> None:
    configured.update_configuration({"t": {"after": ["a"], "run": "tests.flaky"}})
    configured.fire("a", {"failures": 10})
    settle()
    instances = configured.storage.instances_of_task("t")
    assert [i.status for i in instances] == ["replayed"] * 3 + ["failed"]
    last = instances[-1].metadata
    assert last["exceptionType"] == "triggerhooks.exceptions.MaxRetriesExceeded"
    assert "t#3 gave up after 3 retries: ValueError: attempt 3 failed" in last["exceptionInfo"]


class Patient(TriggerTask):
    name = "test_tasks.Patient"
    max_retries = 1

    def _run(self, context: TaskContext) -> dict[str, Any]:
        settings = context.trigger_kwargs["a"]
        if context.task_instance.metadata.get("retries", 0) < settings["failures"]:
            raise self.retry(exc=with_context(KeyError("k"), {"try": 1}),
                             cooldown=settings.get("cooldown", 0),
                             replacement_kwargs=settings.get("replacement"))
        return dict(context.trigger_kwargs)


def test_retry_with_replacement_kwargs(configured: TriggerManager) -> None:
    configured.update_configuration({"t": {"after": ["a"], "run": "test_tasks.Patient"}})
    configured.fire("a", {"failures": 1, "replacement": {"a": {"failures": 5, "new": True}}})
    settle()
    copy = configured.storage["t#1"]
    assert copy.kwargs == {"a": {"failures": 5, "new": True}}
    assert copy.status == "failed"  # max_retries = 1
    assert copy.metadata["exceptionContext"] == {"try": 1}  # the cause's context is kept
    assert configured.storage["t#0"].metadata["exceptionType"] == "KeyError"


def test_retry_waits_for_the_cooldown(configured: TriggerManager) -> None:
    configured.update_configuration({"t": {"after": ["a"], "run": "test_tasks.Patient"}})
    configured.fire("a", {"failures": 1, "cooldown": 0.2})
    settle()
    failed_at = datetime.fromisoformat(configured.storage["t#0"].metadata["timestamps"]["failed"])
    copy = configured.storage["t#1"]
    started_at = datetime.fromisoformat(copy.metadata["timestamps"]["running"])
    assert copy.status == "finished"
    assert (started_at - failed_at).total_seconds() >= 0.2


def test_a_cooldown_no_runner_can_wait_fails_the_instance(configured: TriggerManager) -> None:
    """Not an instance left running (the transition overflowed) or scheduled for a wait no
    runner can make: the retry is refused, and the task fails with the reason."""
    configured.update_configuration({"t": {"after": ["a"], "run": "test_tasks.Patient"}})
    configured.fire("a", {"failures": 1, "cooldown": 1e300})
    settle()
    [instance] = configured.storage.instances_of_task("t")
    assert instance.status == "failed" and instance.metadata["exceptionType"] == "ValueError"
    assert "a retry's cooldown is a number of seconds up to" in instance.metadata["exceptionInfo"]


@pytest.mark.parametrize("cooldown", [float("inf"), float("nan"), 1e10])
def test_retry_refuses_a_cooldown_no_runner_can_wait(cooldown: float) -> None:
    with pytest.raises(ValueError, match=r"threading\.TIMEOUT_MAX"):
        Patient().retry(ValueError("x"), cooldown=cooldown)


def test_retry_from_a_function_task(configured: TriggerManager) -> None:
    @trigger_task(name="test_tasks.function_retry", max_retries=1)
    def function_retry(context: TaskContext) -> None:
        raise context.retry(ValueError("again"))

    configured.update_configuration({"t": {"after": ["a"], "run": "test_tasks.function_retry"}})
    configured.fire("a")
    settle()
    assert [i.status for i in configured.storage.instances_of_task("t")] == [
        "replayed", "failed"]


class RetryWithoutRaise(TriggerTask):
    """Calls ``self.retry`` as a statement: it raises by itself."""

    name = "test_tasks.RetryWithoutRaise"
    max_retries = 1

    def _run(self, context: TaskContext) -> dict[str, Any]:
        if not context.task_instance.metadata.get("retries"):
            self.retry(exc=ConnectionError("server busy"))
        return {"retried": True}


def test_retry_raises_by_itself_and_shows_where_it_was_called(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": RetryWithoutRaise.name}})
    manager.fire("a")
    first, copy = manager.storage.instances_of_task("t")
    assert (first.status, copy.status) == ("replayed", "finished")
    assert copy.metadata["result"] == {"retried": True}
    info = first.metadata["exceptionInfo"]
    # the exception was never raised: the traceback is the one of the retry() call
    assert info.startswith("Traceback (most recent call last):")
    assert 'self.retry(exc=ConnectionError("server busy"))' in info
    assert info.endswith("ConnectionError: server busy\n")


def test_a_manual_replay_counts_retries_afresh(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.flaky"}})
    manager.fire("a", {"failures": 10})
    assert [i.metadata.get("retries") for i in manager.storage.instances_of_task("t")] == [
        None, 1, 2, 3]
    manager.replay_failed_instance("t#3")
    instances = manager.storage.instances_of_task("t")
    assert [i.metadata.get("retries") for i in instances[4:]] == [None, 1, 2, 3]
    assert instances[4].metadata["parent"] == "t#3"
    assert instances[-1].metadata["exceptionType"] == "triggerhooks.exceptions.MaxRetriesExceeded"


def test_retry_outside_a_run_raises_retry() -> None:
    from triggerhooks import Retry

    with pytest.raises(Retry, match="retry in 5s after ValueError"):
        Patient().retry(ValueError("x"), cooldown=5)
    assert issubclass(MaxRetriesExceeded, Exception)


# -- StatusChange ------------------------------------------------------------------------------


@pytest.mark.parametrize("raised", [False, True])
@pytest.mark.parametrize("status", ["finished", "failed", "skipped", "abandoned"])
def test_a_task_ends_in_the_status_it_chooses(configured: TriggerManager, status: str,
                                              raised: bool) -> None:
    configured.update_configuration({"t": {"after": ["a"], "run": "test_tasks.ends_with"},
                                     "down": {"after": ["t"], "run": "tests.echo"}})
    configured.fire("a", {"status": status, "raise": raised})
    settle()
    instance = configured.storage["t#0"]
    assert instance.status == status
    assert instance.metadata["why"] == "chosen"
    if status == "abandoned":  # down can never run now: abandoned with it
        down = configured.storage["down#0"]
        assert (down.status, down.metadata["abandoned"]) == ("abandoned", {"upstream": "t#0"})
    else:
        assert "down#0" not in configured.storage


def test_a_status_change_can_cascade(configured: TriggerManager) -> None:
    configured.update_configuration({"t": {"after": ["a"], "run": "test_tasks.ends_with"},
                                     "down": {"after": ["t"], "run": "tests.echo"}})
    configured.fire("a", {"status": "skipped", "cascade": True, "cascade_kwargs": {"k": 1}})
    settle()
    assert configured.storage["t#0"].status == "skipped"
    assert configured.storage["down#0"].kwargs == {"t": {"k": 1}}


def test_a_finished_status_change_keeps_its_cascade_kwargs_as_result(
        configured: TriggerManager) -> None:
    configured.update_configuration({"t": {"after": ["a"], "run": "test_tasks.ends_with"}})
    configured.fire("a", {"status": "finished", "cascade": True, "cascade_kwargs": {"k": 2}})
    settle()
    assert configured.storage["t#0"].metadata["result"] == {"k": 2}


@pytest.mark.parametrize("status", ["unstarted", "running", "replayed", "nonsense"])
def test_status_change_rejects_statuses_a_task_cannot_end_in(status: str) -> None:
    with pytest.raises(InvalidStatusError) as caught:
        StatusChange(status)
    assert isinstance(caught.value, TriggerhooksError) and isinstance(caught.value, ValueError)
    if status != "nonsense":
        assert str(caught.value).startswith(f"a task cannot end in status {status!r}")


def test_a_status_change_to_scheduled_runs_the_instance_again(manager: TriggerManager) -> None:
    @trigger_task(name="test_tasks.once_more")
    def once_more(context: TaskContext) -> Any:
        if not context.task_instance.metadata.get("again"):
            return StatusChange("scheduled", {"again": True})
        return {"runs": 2}

    manager.update_configuration({"t": {"after": ["a"], "run": "test_tasks.once_more"}})
    manager.fire("a")
    instance = manager.storage["t#0"]
    assert (instance.status, instance.metadata["result"]) == ("finished", {"runs": 2})
    assert instance.metadata["again"] is True


def test_a_status_change_with_unstorable_metadata_fails_the_instance(
        manager: TriggerManager) -> None:
    @trigger_task(name="test_tasks.bad_status_metadata")
    def bad_status_metadata(context: TaskContext) -> StatusChange:
        return StatusChange(TaskStatus.FINISHED, {"when": datetime(2024, 1, 1)})

    manager.update_configuration({"t": {"after": ["a"],
                                        "run": "test_tasks.bad_status_metadata"}})
    manager.fire("a")
    meta = manager.storage["t#0"].metadata
    assert manager.storage["t#0"].status == "failed"
    assert meta["exceptionType"] == "triggerhooks.exceptions.UnstorableKwargsError"
    assert "metadata of t#0 cannot be stored as JSON" in meta["exceptionInfo"]


# -- kwargs validation -------------------------------------------------------------------------


class Page(BaseModel):
    responses: dict[str, str]


class Expected(BaseModel):
    firstPageReceived: Page
    questionnaireComplete: dict[str, Any]


@trigger_task(name="test_tasks.validating")
def validating(context: TaskContext) -> dict[str, Any]:
    kwargs = context.validate_kwargs(Expected)
    return {"givenNames": kwargs.firstPageReceived.responses["givenNames"]}


def test_validate_kwargs_returns_the_model(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["firstPageReceived", "questionnaireComplete"],
                                        "run": "test_tasks.validating"}})
    manager.fire("firstPageReceived", {"responses": {"givenNames": "Ada"}})
    manager.fire("questionnaireComplete")
    assert manager.storage["t#0"].metadata["result"] == {"givenNames": "Ada"}


def test_validate_kwargs_lists_every_problem(storage: StorageBackend) -> None:
    manager = TriggerManager(storage)
    manager.update_configuration({"t": {"after": ["firstPageReceived", "other"],
                                        "run": "test_tasks.validating"}})
    manager.fire("firstPageReceived", {"responses": {"givenNames": 7}})
    manager.fire("other")
    meta = manager.storage["t#0"].metadata
    assert meta["exceptionType"] == "triggerhooks.exceptions.InvalidKwargsError"
    assert ("invalid trigger kwargs for t#0: firstPageReceived.responses.givenNames: Input "
            "should be a valid string; questionnaireComplete: Field required"
            in meta["exceptionInfo"])
