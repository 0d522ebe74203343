"""Receivers: ``@on``, ``filter_events``, ``send_event``, ``connected``, ``capture_signals``."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from blinker import Signal

from tests.helpers import ROOT
from triggerhooks import (
    SignalHandlingError,
    TriggerManager,
    capture_signals,
    connected,
    filter_events,
    on,
    send_event,
    trigger_task,
)
from triggerhooks.serialization import dotted_name
from triggerhooks.signals import (
    OrderedSignal,
    namespace,
    post_fire,
    pre_fire,
    task_completed,
    task_failed,
    task_started,
)
from triggerhooks.task import TaskContext, TriggerTask


class ImportSubject(TriggerTask):
    name = "tests.events.ImportSubject"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        return {"subjectId": 42}


class ImportResponses(TriggerTask):
    name = "tests.events.ImportResponses"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        return {"responses": 3}


@trigger_task(name="tests.events.score")
def score(context: TaskContext) -> dict[str, Any]:
    return {"score": 0.9}


@trigger_task(name="tests.events.report")
def report(context: TaskContext) -> dict[str, Any]:
    return {"report": "ok"}


CONFIG = {
    "t_importSubject": {"after": ["firstPageReceived"], "run": ImportSubject.name},
    "t_importResponses": {"after": ["t_importSubject"], "andEvery": "pageReceived",
                          "run": ImportResponses.name},
}


class Recorder:
    """A receiver that records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, dict[str, Any]]] = []

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        self.calls.append((sender, kwargs))


# -- @on --------------------------------------------------------------------------------------


def test_on_single_signal_gets_manager_session_and_fire_arguments(
        manager: TriggerManager) -> None:
    calls: list[dict[str, Any]] = []

    @on(post_fire)
    def audit(sender: Any, **kwargs: Any) -> None:
        calls.append({"sender": sender, **kwargs})

    manager.fire("pageReceived", {"page": 1})
    assert calls == [{"sender": TriggerManager, "manager": manager,
                      "session_uid": manager.storage.uid, "trigger_name": "pageReceived",
                      "trigger_kwargs": {"page": 1}, "tasks_scheduled": []}]


def test_on_list_connects_every_signal_and_returns_the_function(manager: TriggerManager) -> None:
    seen: list[tuple[str, str]] = []

    def audit(sender: Any, trigger_name: str, **kwargs: Any) -> None:
        seen.append(("post" if "tasks_scheduled" in kwargs else "pre", trigger_name))

    assert on([pre_fire, post_fire])(audit) is audit
    manager.fire("x")
    assert seen == [("pre", "x"), ("post", "x")]


def test_sender_selects_one_task_class(manager: TriggerManager) -> None:
    subject, responses, anything = Recorder(), Recorder(), Recorder()
    on(task_completed, sender=ImportSubject)(subject)
    on(task_completed, sender=ImportResponses)(responses)
    on(task_completed)(anything)
    manager.update_configuration(CONFIG)
    manager.fire("pageReceived", {"page": 1})
    manager.fire("firstPageReceived", {"responses": {}})

    assert [(s, kw["task_instance"].name, kw["result"]) for s, kw in subject.calls] == [
        (ImportSubject, "t_importSubject#0", {"subjectId": 42})]
    assert [(s, kw["task_instance"].name) for s, kw in responses.calls] == [
        (ImportResponses, "t_importResponses#0")]
    assert len(anything.calls) == 2


def test_sender_can_be_a_function_task(manager: TriggerManager) -> None:
    scored, started = Recorder(), Recorder()
    on(task_completed, sender=score)(scored)
    on(task_started, sender=report)(started)
    manager.update_configuration({
        "t_score": {"after": ["go"], "run": "tests.events.score"},
        "t_report": {"after": ["t_score"], "run": "tests.events.report"},
    })
    manager.fire("go")
    assert [(s, kw["task_instance"].name, kw["result"]) for s, kw in scored.calls] == [
        (score.__trigger_task__, "t_score#0", {"score": 0.9})]  # type: ignore[attr-defined]
    assert [kw["task_instance"].name for _, kw in started.calls] == ["t_report#0"]


def test_session_signals_are_sent_by_the_manager_class(make_storage: Any) -> None:
    class AuditedManager(TriggerManager):
        pass

    audited = Recorder()
    on(post_fire, sender=AuditedManager)(audited)
    TriggerManager(make_storage()).fire("plain")
    AuditedManager(make_storage()).fire("audited")
    assert [(s, kw["trigger_name"]) for s, kw in audited.calls] == [(AuditedManager, "audited")]


def test_receivers_run_in_connection_order_whatever_their_sender(manager: TriggerManager) -> None:
    order: list[str] = []
    on(task_completed, sender=ImportSubject)(lambda sender, **kw: order.append("specific"))
    on(task_completed)(lambda sender, **kw: order.append("any 1"))
    on(task_completed, sender=score)(lambda sender, **kw: order.append("other task"))
    on(task_completed)(lambda sender, **kw: order.append("any 2"))
    manager.update_configuration({"t": {"after": ["go"], "run": ImportSubject.name}})
    manager.fire("go")
    assert order == ["specific", "any 1", "any 2"]


def test_on_rejects_what_it_cannot_connect() -> None:
    before = dict(post_fire.receivers)
    with pytest.raises(ValueError, match="at least one signal"):
        on([])
    with pytest.raises(TypeError, match=r"from triggerhooks\.signals import post_fire"):
        on(["post_fire"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="blinker signals"):
        on([post_fire, 42])  # type: ignore[list-item]

    async def coroutine(sender: Any, **kwargs: Any) -> None: ...

    with pytest.raises(TypeError, match="coroutine function"):
        on(post_fire)(coroutine)
    assert post_fire.receivers == before


# -- filter_events ------------------------------------------------------------------------------


def test_filter_with_one_named_parameter(manager: TriggerManager) -> None:
    first = Recorder()
    on(task_completed)(filter_events(lambda task_instance: task_instance.name.endswith("#0"))(first))
    manager.update_configuration(CONFIG)
    manager.fire("firstPageReceived")
    manager.fire("pageReceived", {"page": 1})
    manager.fire("pageReceived", {"page": 2})
    assert [kw["task_instance"].name for _, kw in first.calls] == [
        "t_importSubject#0", "t_importResponses#0"]


def test_filter_with_several_parameters_including_sender(manager: TriggerManager) -> None:
    matched = Recorder()
    seen: list[tuple[Any, str, Any]] = []

    def predicate(sender: Any, task_instance: Any, result: Any) -> bool:
        seen.append((sender, task_instance.name, result))
        return sender is ImportResponses and result == {"responses": 3}

    @on(task_completed)
    @filter_events(predicate)
    def notify(sender: Any, **kwargs: Any) -> None:
        matched(sender, **kwargs)

    manager.update_configuration(CONFIG)
    manager.fire("firstPageReceived")
    manager.fire("pageReceived")
    assert seen == [(ImportSubject, "t_importSubject#0", {"subjectId": 42}),
                    (ImportResponses, "t_importResponses#0", {"responses": 3})]
    assert [kw["task_instance"].name for _, kw in matched.calls] == ["t_importResponses#0"]
    assert dotted_name(notify) == f"{__name__}.{notify.__qualname__}"


def test_filter_predicate_with_defaults_and_var_kwargs(manager: TriggerManager) -> None:
    with_default, with_kwargs = Recorder(), Recorder()
    # post_fire passes no "result": the default is used
    on(post_fire)(filter_events(lambda trigger_name, result=None: result is None)(with_default))
    on(post_fire)(filter_events(lambda **kw: kw["trigger_name"] == "b" and "sender" in kw)(
        with_kwargs))
    manager.fire("a")
    manager.fire("b")
    assert [kw["trigger_name"] for _, kw in with_default.calls] == ["a", "b"]
    assert [kw["trigger_name"] for _, kw in with_kwargs.calls] == ["b"]


def test_filter_predicate_asking_for_an_argument_an_application_signal_lacks_fails_clearly(
        caplog: pytest.LogCaptureFixture) -> None:
    # An application's plain blinker signal has no payload to check against when connecting:
    # the predicate's mistake is found when the signal is sent, and logged.
    signal = Signal()
    never = Recorder()
    on(signal)(filter_events(lambda result: True)(never))
    with caplog.at_level(logging.ERROR, logger="triggerhooks.events"):
        send_event(signal, None, trigger_name="a")
    assert never.calls == []
    assert "asks for 'result'" in caplog.text


def test_filter_predicate_must_take_arguments_by_name() -> None:
    def predicate(task_instance: Any, /) -> bool:
        return True

    with pytest.raises(TypeError, match="positional-only"):
        filter_events(predicate)


# -- failures ---------------------------------------------------------------------------------


def failing_receiver(sender: Any, **kwargs: Any) -> None:
    raise RuntimeError("receiver broke")


def test_failures_are_logged_and_change_nothing(
        make_storage: Any, caplog: pytest.LogCaptureFixture) -> None:
    reference = TriggerManager(make_storage())
    reference.update_configuration(CONFIG)
    reference.fire("firstPageReceived", {"a": 1})
    reference.fire("pageReceived", {"page": 1})
    expected = {name: (inst.status, inst.metadata.get("result"))
                for name, inst in reference.storage.instances.items()}

    manager = TriggerManager(make_storage())
    after = Recorder()
    for signal in namespace.values():
        on(signal)(failing_receiver)
        on(signal)(after)
    with caplog.at_level(logging.ERROR, logger="triggerhooks.events"):
        manager.update_configuration(CONFIG)
        manager.fire("firstPageReceived", {"a": 1})
        manager.fire("pageReceived", {"page": 1})

    assert {name: (inst.status, inst.metadata.get("result"))
            for name, inst in manager.storage.instances.items()} == expected
    assert manager.storage.latest_kwargs == reference.storage.latest_kwargs
    failures = [r for r in caplog.records if "receiver broke" in r.getMessage()]
    # every signal sent reached the receiver after the failing one
    assert len(failures) == len(after.calls) > 10
    assert all(f"{__name__}.failing_receiver" in r.getMessage() for r in failures)
    assert all(r.exc_info is not None for r in failures)


def test_raise_exception_errors_are_aggregated_after_every_receiver_ran(
        caplog: pytest.LogCaptureFixture) -> None:
    signal = OrderedSignal("ordered")  # receivers in connection order, as for triggerhooks' signals
    ran: list[str] = []

    def first(sender: Any, **kwargs: Any) -> None:
        ran.append("first")
        raise ValueError("first failed")

    def logged_only(sender: Any, **kwargs: Any) -> None:
        ran.append("logged_only")
        raise RuntimeError("not raised")

    def second(sender: Any, **kwargs: Any) -> None:
        ran.append("second")
        raise KeyError("second")

    def fine(sender: Any, **kwargs: Any) -> str:
        ran.append("fine")
        return "ok"

    on(signal, raise_exception=True)(first)
    on(signal)(logged_only)
    on(signal, raise_exception=True)(second)
    on(signal)(fine)
    with caplog.at_level(logging.ERROR), pytest.raises(SignalHandlingError) as caught:
        send_event(signal, "me", value=1)
    assert ran == ["first", "logged_only", "second", "fine"]
    assert [type(e) for e in caught.value.caught_exceptions] == [ValueError, KeyError]
    assert str(caught.value) == "first failed, 'second'"
    assert len([r for r in caplog.records if r.name == "triggerhooks.events"]) == 3


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() of this exception fails")


def test_an_exception_whose_str_fails_is_raised_with_the_others(manager: TriggerManager) -> None:
    """The SignalHandlingError is still made (its message shows what Python's tracebacks
    show), so the change goes on: the scheduled instance is handed off and runs."""
    def unprintable(sender: Any, **kwargs: Any) -> None:
        raise _Unprintable()

    def plain(sender: Any, **kwargs: Any) -> None:
        raise ValueError("plain")

    manager.update_configuration({"t": {"after": ["a"], "run": "tests.noop"}})
    with connected(unprintable, task_started, raise_exception=True), \
            connected(plain, task_started, raise_exception=True), \
            pytest.raises(SignalHandlingError) as caught:
        manager.fire("a")
    assert str(caught.value) == "<exception str() failed>, plain"
    assert [type(e) for e in caught.value.caught_exceptions] == [_Unprintable, ValueError]
    assert manager.storage["t#0"].status == "finished"


def test_send_event_results_muting_and_no_receivers() -> None:
    signal = Signal()
    assert send_event(signal, None) == []

    def double(sender: Any, value: int) -> int:
        return value * 2

    on(signal)(double)
    on(signal)(failing_receiver)
    results = send_event(signal, None, value=21)
    assert results[0] == (double, 42)
    assert results[1][0] is failing_receiver and isinstance(results[1][1], RuntimeError)
    with signal.muted():
        assert send_event(signal, None, value=1) == []


def test_raise_flag_belongs_to_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    signal = Signal()
    on(signal, raise_exception=True)(failing_receiver)
    with pytest.raises(SignalHandlingError):
        send_event(signal, None)
    signal.disconnect(failing_receiver)
    signal.connect(failing_receiver, weak=False)  # plain blinker: failures are only logged
    with caplog.at_level(logging.ERROR):
        send_event(signal, None)
    on(signal, raise_exception=False)(failing_receiver)
    send_event(signal, None)
    assert "receiver broke" in caplog.text


# -- test helpers ------------------------------------------------------------------------------


def test_connected_disconnects_completely(manager: TriggerManager) -> None:
    calls = Recorder()
    before = (dict(task_completed.receivers), dict(task_failed.receivers))
    with connected(calls, [task_completed, task_failed], sender=ImportSubject,
                   raise_exception=True) as receiver:
        assert receiver is calls
        manager.update_configuration({"t": {"after": ["go"], "run": ImportSubject.name}})
        manager.fire("go")
    assert len(calls.calls) == 1
    # nothing left behind (with no other receivers, the "no receivers" fast path is back)
    assert (task_completed.receivers, task_failed.receivers) == before


def test_capture_signals_records_names_senders_and_arguments(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["go"], "run": ImportSubject.name}})
    before = (dict(task_completed.receivers), dict(post_fire.receivers))
    with capture_signals(task_completed, post_fire) as sent:
        manager.fire("go", {"n": 1})
    assert sent.names == ["post_fire", "task_completed", "post_fire", "post_fire"]
    assert [s["trigger_name"] for s in sent.of(post_fire)] == ["go", "t", "sessionFinalized"]
    completed = sent.of("task_completed")[0]
    assert completed.sender is ImportSubject and completed["result"] == {"subjectId": 42}
    assert (task_completed.receivers, post_fire.receivers) == before

    with capture_signals(sender=ImportSubject) as only_subject:
        manager.fire("again")
    assert only_subject == []


def test_every_signal_is_documented() -> None:
    page = (ROOT / "docs" / "events.md").read_text()
    for name, signal in namespace.items():
        assert signal.__doc__ and "sender" in signal.__doc__, name
        assert f"| `{name}` |" in page, f"{name} is missing from the table in docs/events.md"

