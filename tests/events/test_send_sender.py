"""``send_event`` takes the sender by position or by keyword, with one meaning.

Caluma's and Django's code write ``send_event(signal, sender=CompleteWorkItem, ...)``;
a receiver connected for that sender must be reached either way, and every receiver
must get the sender as its first positional argument, never as a keyword too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import blinker
import pytest

from triggerhooks import (
    MemoryStorageBackend,
    SignalHandlingError,
    TriggerManager,
    capture_signals,
    filter_events,
    on,
    send_event,
    trigger_task,
)
from triggerhooks.signals import OrderedSignal, task_completed
from triggerhooks.task import TaskContext


class CompleteWorkItem:
    """A sender as Caluma has them: a mutation class."""


class SkipWorkItem:
    """Another sender."""


@trigger_task(name="tests.send_sender.import_subject")
def import_subject(context: TaskContext) -> dict[str, Any]:
    return {}


def by_position(signal: Any, sender: Any, **kwargs: Any) -> Any:
    return send_event(signal, sender, **kwargs)


def by_keyword(signal: Any, sender: Any, **kwargs: Any) -> Any:
    return send_event(signal, sender=sender, **kwargs)


def django_style(signal: Any, sender: Any, **kwargs: Any) -> Any:
    return signal.send(sender=sender, **kwargs)


SENDS = [by_position, by_keyword]


class Calls(list[tuple[tuple[Any, ...], dict[str, Any]]]):
    """Each call's positional and keyword arguments, as the receiver got them."""

    def receiver(self) -> Callable[..., None]:
        def receive(*args: Any, **kwargs: Any) -> None:
            self.append((args, kwargs))

        return receive


@pytest.fixture
def completed_work_item() -> OrderedSignal:
    return OrderedSignal("tests.completed_work_item",
                         arguments={"work_item": "", "user": "", "context": ""})


ARGUMENTS = {"work_item": "wi-1", "user": "ada", "context": None}


@pytest.mark.parametrize("send", [*SENDS, django_style], ids=lambda send: send.__name__)
def test_a_receiver_filtered_on_the_sender_is_reached_either_way(
        send: Callable[..., Any], completed_work_item: OrderedSignal) -> None:
    filtered, other, unfiltered = Calls(), Calls(), Calls()
    on(completed_work_item, sender=CompleteWorkItem)(filtered.receiver())
    on(completed_work_item, sender=SkipWorkItem)(other.receiver())
    on(completed_work_item)(unfiltered.receiver())

    send(completed_work_item, CompleteWorkItem, **ARGUMENTS)

    assert filtered == [((CompleteWorkItem,), ARGUMENTS)]
    assert unfiltered == [((CompleteWorkItem,), ARGUMENTS)]  # sender first, never a kwarg
    assert other == []


@pytest.mark.parametrize("send", SENDS, ids=lambda send: send.__name__)
def test_a_receiver_naming_the_sender_gets_it_once(
        send: Callable[..., Any], completed_work_item: OrderedSignal,
        caplog: pytest.LogCaptureFixture) -> None:
    """The issue's receiver: ``got multiple values for argument 'sender'``, only logged."""
    got: list[tuple[Any, Any]] = []

    @on(completed_work_item)
    def send_mail(sender: Any, work_item: Any, user: Any, context: Any) -> None:
        got.append((sender, work_item))

    with caplog.at_level(logging.ERROR, logger="triggerhooks.events"):
        [(_, value)] = send(completed_work_item, CompleteWorkItem, **ARGUMENTS)
    assert value is None and got == [(CompleteWorkItem, "wi-1")]
    assert caplog.records == []


@pytest.mark.parametrize("send", SENDS, ids=lambda send: send.__name__)
def test_a_predicate_gets_the_sender_given(send: Callable[..., Any],
                                           completed_work_item: OrderedSignal) -> None:
    seen = Calls()
    on(completed_work_item)(filter_events(lambda sender: sender is CompleteWorkItem)(
        seen.receiver()))
    send(completed_work_item, SkipWorkItem, **ARGUMENTS)
    send(completed_work_item, CompleteWorkItem, **ARGUMENTS)
    assert [args for args, _ in seen] == [(CompleteWorkItem,)]


def test_the_sender_given_both_ways_is_a_type_error(completed_work_item: OrderedSignal) -> None:
    calls = Calls()
    on(completed_work_item)(calls.receiver())
    for positional in (CompleteWorkItem, None):  # None by position is a sender too
        with pytest.raises(TypeError, match=r"send_event\(\) got the sender twice"):
            send_event(completed_work_item, positional, sender=CompleteWorkItem, **ARGUMENTS)
        with pytest.raises(TypeError, match=r"tests\.completed_work_item\.send\(\) got the sender "
                                            r"twice"):
            completed_work_item.send(positional, sender=CompleteWorkItem, **ARGUMENTS)
    assert calls == []


def test_no_sender_is_none(completed_work_item: OrderedSignal) -> None:
    anyone, filtered = Calls(), Calls()
    on(completed_work_item)(anyone.receiver())
    on(completed_work_item, sender=CompleteWorkItem)(filtered.receiver())
    send_event(completed_work_item, **ARGUMENTS)
    completed_work_item.send(**ARGUMENTS)
    assert anyone == [((None,), ARGUMENTS)] * 2
    assert filtered == []


@pytest.mark.parametrize("send", SENDS, ids=lambda send: send.__name__)
def test_kwargs_receivers_never_see_a_sender_keyword(send: Callable[..., Any]) -> None:
    """A plain blinker signal (no arguments declared): ``sender=`` is still the sender."""
    signal = blinker.Signal()
    calls = Calls()
    on(signal)(calls.receiver())
    on(signal, sender=CompleteWorkItem)(filter_events(lambda **kwargs: "sender" in kwargs)(
        calls.receiver()))
    send(signal, CompleteWorkItem, work_item="wi-1")
    assert calls == [((CompleteWorkItem,), {"work_item": "wi-1"})] * 2


@pytest.mark.parametrize("send", SENDS, ids=lambda send: send.__name__)
def test_raise_exception_receivers_raise_either_way(send: Callable[..., Any],
                                                    completed_work_item: OrderedSignal) -> None:
    @on(completed_work_item, sender=CompleteWorkItem, raise_exception=True)
    def refuse(sender: Any, **kwargs: Any) -> None:
        raise PermissionError(f"{sender.__name__} may not")

    with pytest.raises(SignalHandlingError, match="CompleteWorkItem may not"):
        send(completed_work_item, CompleteWorkItem, **ARGUMENTS)


@pytest.mark.parametrize("send", SENDS, ids=lambda send: send.__name__)
def test_a_task_function_stands_for_its_task_class(send: Callable[..., Any]) -> None:
    task_class = import_subject.__trigger_task__  # type: ignore[attr-defined]
    by_function, by_class = Calls(), Calls()
    on(task_completed, sender=import_subject)(by_function.receiver())
    on(task_completed, sender=task_class)(by_class.receiver())
    manager = TriggerManager(MemoryStorageBackend(uid=f"send-sender-{send.__name__}"))
    manager.update_configuration({"t": {"after": ["go"], "run": "tests.send_sender.import_subject"}})
    manager.fire("go")
    assert [args for args, _ in by_function] == [(task_class,)]

    with capture_signals(task_completed, sender=import_subject) as sent:
        send(task_completed, import_subject, manager=manager, session_uid="s",
             task_instance=manager.storage["t#0"], result={})
    assert [args for args, _ in by_function] == [(task_class,)] * 2
    assert [args for args, _ in by_class] == [(task_class,)] * 2
    assert [each.sender for each in sent] == [task_class]


def test_a_send_with_the_wrong_arguments_raises_before_any_receiver(
        completed_work_item: OrderedSignal) -> None:
    calls = Calls()
    on(completed_work_item)(calls.receiver())
    with pytest.raises(TypeError, match=r"signal tests\.completed_work_item was sent with the "
                                        r"wrong arguments \(missing context; unexpected "
                                        r"contxt\): it passes work_item, user, context"):
        send_event(completed_work_item, sender=CompleteWorkItem, work_item=1, user=2, contxt=3)
    with pytest.raises(TypeError, match="missing result"):
        task_completed.send(import_subject, manager=None, session_uid="s", task_instance=None)
    assert calls == []


def test_no_signal_argument_may_be_called_sender() -> None:
    for name in ("sender", "sender_name"):
        with pytest.raises(ValueError, match=f"cannot have an argument named '{name}'"):
            OrderedSignal("tests.bad", arguments={name: "who sent it"})
    with pytest.raises(ValueError, match="not 'class'"):
        OrderedSignal("tests.bad", arguments={"class": ""})
