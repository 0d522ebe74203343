"""Background receivers: ``@on(signal, background=True)`` runs through the session's runner."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.backends import BACKENDS
from tests.events import named_receivers as background
from triggerhooks import (
    InlineTaskRunner,
    TaskConfig,
    TaskInstance,
    TaskStatus,
    ThreadingTaskRunner,
    TriggerManager,
    connected,
    filter_events,
    on,
    trigger_task,
)
from triggerhooks.events.background import BackgroundCall
from triggerhooks.runners import task_runners
from triggerhooks.serialization import dumps, loads
from triggerhooks.signals import (
    configuration_updated,
    post_fire,
    pre_fire,
    pre_replay,
    task_completed,
    task_failed,
)
from triggerhooks.storages import StorageBackend
from triggerhooks.task import TaskContext
from triggerhooks.testing import registered_class


@trigger_task(name="tests.background.work")
def work(context: TaskContext) -> dict[str, Any]:
    return {"done": context.task_instance.name}


@trigger_task(name="tests.background.fail")
def fail(context: TaskContext) -> dict[str, Any]:
    raise ValueError("bad input")


CONFIG = {"t": {"after": ["go"], "run": "tests.background.work"}}


@pytest.fixture(autouse=True)
def _clear() -> Iterator[None]:
    background.calls.clear()
    background.released.clear()
    yield
    background.released.set()


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)  # what is stored, seen from receivers
def test_inline_runs_it_after_the_change_is_stored_with_json_arguments(
        manager: TriggerManager) -> None:
    manager.update_configuration(CONFIG)
    seen_by_blocking: list[int] = []

    def blocking(sender: Any, **kwargs: Any) -> None:
        seen_by_blocking.append(len(background.calls))

    with connected(background.record, task_completed, sender=work, background=True), \
            connected(blocking, task_completed):
        manager.fire("go", {"page": 1})

    [call] = background.calls
    assert seen_by_blocking == [1]  # handed off (and run: inline) in its place, before it
    assert call["sender"] is work.__trigger_task__  # type: ignore[attr-defined]
    assert call["manager"] is manager
    instance = call["task_instance"]
    assert isinstance(instance, TaskInstance) and instance.name == "t#0"
    assert instance.status is TaskStatus.FINISHED
    assert call["result"] == {"done": "t#0"}
    assert call["session_uid"] == manager.storage.uid
    assert manager.storage["t#0"].status is TaskStatus.FINISHED


def test_threading_runs_it_in_a_thread_so_a_slow_receiver_never_delays_fire(
        storage: StorageBackend) -> None:
    manager = TriggerManager(storage, task_runner="threading")
    with connected(background.slow, post_fire, background=True):
        manager.fire("go", {"n": 1})  # would block for 10s if the receiver ran here
        assert background.calls == []
        background.released.set()
        ThreadingTaskRunner.join_all(timeout=10)
    [call] = background.calls
    assert call["trigger_name"] == "go" and call["trigger_kwargs"] == {"n": 1}
    assert call["tasks_scheduled"] == []


def test_the_arguments_become_json_values_and_exceptions_none(manager: TriggerManager) -> None:
    manager.update_configuration({"f": {"after": ["go"], "run": "tests.background.fail"}})
    with connected(background.record, [task_failed, configuration_updated], background=True):
        manager.update_configuration({"g": {"after": ["go"], "run": "tests.background.work"}})
        manager.fire("go")
    by_signal = {("tasks" in call): call for call in background.calls}
    configured = by_signal[True]["tasks"]
    assert configured == {"g": TaskConfig("g", "tests.background.work", ("go",))}
    failed = by_signal[False]
    assert failed["exception"] is None
    assert failed["task_instance"].metadata["exceptionType"] == "ValueError"


def test_a_filter_is_checked_where_the_signal_is_sent(manager: TriggerManager) -> None:
    manager.update_configuration({**CONFIG, "u": {"after": ["go"], "run": "tests.background.work"}})
    asked: list[str] = []

    def only_u(task_instance: TaskInstance) -> bool:
        asked.append(threading.current_thread().name)
        return task_instance.name.startswith("u#")

    receiver = filter_events(only_u)(background.record)
    with connected(receiver, task_completed, background=True):
        manager.fire("go")
    assert [call["task_instance"].name for call in background.calls] == ["u#0"]
    assert len(asked) == 2


def test_arguments_that_are_not_json_fail_the_receiver_only(
        manager: TriggerManager, caplog: pytest.LogCaptureFixture) -> None:
    manager.update_configuration(CONFIG)
    from triggerhooks.events import send_event

    with connected(background.record, post_fire, background=True):
        send_event(post_fire, TriggerManager, manager=manager, session_uid="x",
                   trigger_name="go", trigger_kwargs={"when": object()}, tasks_scheduled=[])
    assert background.calls == []
    assert "cannot be stored as JSON" in caplog.text
    assert "tests.events.named_receivers.record" in caplog.text


@pytest.mark.parametrize("signal", [pre_fire, pre_replay])
def test_signals_sent_before_a_change_refuse_background_receivers(signal: Any) -> None:
    with pytest.raises(ValueError, match="before the change is stored"):
        on(signal, background=True)


def test_background_and_raise_exception_do_not_mix() -> None:
    with pytest.raises(ValueError, match="cannot raise_exception"):
        on(post_fire, background=True, raise_exception=True)


def test_a_local_function_is_refused_it_could_not_be_found_by_name() -> None:
    def local(sender: Any, **kwargs: Any) -> None: ...

    with pytest.raises(ValueError, match="module-level"):
        on(post_fire, background=True)(local)


class CapturingRunner(InlineTaskRunner):
    """Keeps background calls instead of making them."""

    name = "tests.capture"
    calls: list[BackgroundCall] = []

    def schedule_receiver(self, manager: TriggerManager, call: BackgroundCall) -> None:
        self.calls.append(call)


def test_a_call_travels_as_json_and_finds_its_receiver_and_sender_by_name(
        storage: StorageBackend) -> None:
    CapturingRunner.calls = []
    with registered_class(task_runners, "tests.capture", CapturingRunner), \
            connected(background.record, task_completed, background=True):
        manager = TriggerManager(storage, task_runner="tests.capture")
        manager.update_configuration(CONFIG)
        manager.fire("go")
        assert background.calls == []
        [captured] = CapturingRunner.calls
        document = loads(dumps(captured.to_json()))
        assert document["receiver"] == ["tests.events.named_receivers", "record"]
        assert document["sender"] == {"task": "tests.background.work"}
        BackgroundCall.from_json(document).run(manager)
    [call] = background.calls
    assert call["sender"] is work.__trigger_task__  # type: ignore[attr-defined]
    assert call["task_instance"].name == "t#0"
    assert call["result"] == {"done": "t#0"}


def test_a_function_that_is_not_a_background_receiver_is_never_called_by_name(
        manager: TriggerManager) -> None:
    document = {"signal": "post_fire", "receiver": ["tests.events.named_receivers", "not_background"],
                "sender": None, "kwargs": {}, "kinds": {}}
    with pytest.raises(LookupError, match="not a background receiver"):
        BackgroundCall.from_json(document).run(manager)
    assert background.calls == []
