"""What ``@on`` and ``filter_events`` refuse when a receiver is connected, and the one meaning
of ``sender`` (a ``@trigger_task`` function wherever a task class is accepted)."""

from __future__ import annotations

import typing
from typing import Any

import blinker
import pytest
from blinker import Signal

from triggerhooks import (
    MemoryStorageBackend,
    TriggerManager,
    capture_signals,
    filter_events,
    on,
    send_event,
    trigger_task,
)
from triggerhooks.signals import (
    OrderedSignal,
    SessionPayload,
    namespace,
    post_fire,
    pre_fire,
    task_completed,
    task_failed,
)
from triggerhooks.task import TaskContext, TriggerTask


@trigger_task(name="tests.connecting.ship_order")
def ship_order(context: TaskContext) -> dict[str, Any]:
    return {"shipped": True}


class ChargeCard(TriggerTask):
    name = "tests.connecting.ChargeCard"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        return {"charged": True}


def not_a_task(context: TaskContext) -> dict[str, Any]:
    return {}


CONFIG = {
    "t_ship": {"after": ["paid"], "run": "tests.connecting.ship_order"},
    "t_charge": {"after": ["ordered"], "run": ChargeCard.name},
}


def receivers() -> dict[str, dict[Any, Any]]:
    return {name: dict(signal.receivers) for name, signal in namespace.items()}


@pytest.fixture
def untouched() -> Any:
    """Asserts afterwards that a refused receiver left nothing connected."""
    before = receivers()
    yield
    assert receivers() == before


# -- the order of the decorators ---------------------------------------------------------------


@pytest.mark.usefixtures("untouched")
def test_filter_events_above_on_raises_and_leaves_nothing_connected() -> None:
    with pytest.raises(TypeError) as caught:
        @filter_events(lambda task_instance: True)
        @on([task_completed, task_failed])
        def notify(sender: Any, **kwargs: Any) -> None: ...

    message = str(caught.value)
    assert "@filter_events is above @on" in message
    assert "(to task_completed, task_failed)" in message
    assert "Put @filter_events below @on" in message
    assert ("    @on([task_completed, task_failed])\n    @filter_events(<lambda>)\n"
            "    def notify(sender, **kwargs): ...") in message


def test_filter_events_below_on_and_stacked_filters_work() -> None:
    calls: list[str] = []

    @on(task_completed)
    @filter_events(lambda sender_name: sender_name == "tests.connecting.ship_order")
    @filter_events(lambda result: result.get("shipped"))
    def shipped(sender: Any, task_instance: Any, **kwargs: Any) -> None:
        calls.append(task_instance.name)

    manager = TriggerManager(MemoryStorageBackend(uid="connecting-stacked"))
    manager.update_configuration(CONFIG)
    manager.fire("paid")
    manager.fire("ordered")
    assert calls == ["t_ship#0"]


@pytest.mark.usefixtures("untouched")
def test_a_bare_filter_events_or_on_says_how_to_write_it() -> None:
    with pytest.raises(TypeError, match="filter_events takes a predicate"):
        @on(task_completed)
        @filter_events  # type: ignore[arg-type]
        def bare_filter(sender: Any, **kwargs: Any) -> None: ...

    with pytest.raises(TypeError, match=r"write @on\(task_completed\).*not a bare @on"):
        @on  # type: ignore[arg-type]
        def bare_on(sender: Any, **kwargs: Any) -> None: ...

    with pytest.raises(TypeError, match="filter_events takes a predicate function"):
        filter_events(task_completed)  # type: ignore[arg-type]


# -- predicates and receivers against the payload --------------------------------------------------


@pytest.mark.usefixtures("untouched")
def test_a_predicate_parameter_the_signal_never_passes_raises_at_connection() -> None:
    with pytest.raises(TypeError) as caught:
        @on(post_fire)
        @filter_events(lambda result: True)
        def on_fire(sender: Any, **kwargs: Any) -> None: ...

    assert ("asks for 'result', which post_fire never passes (it passes sender, sender_name, "
            "manager, session_uid, trigger_name, trigger_kwargs, tasks_scheduled); give the "
            "parameter a default (result=None)") in str(caught.value)

    with pytest.raises(TypeError, match=r"'task_instace', .*did you mean 'task_instance'\?"):
        @on(task_completed)
        @filter_events(lambda task_instace: True)
        def misspelled(sender: Any, **kwargs: Any) -> None: ...

    # a list of signals: every one must pass a parameter without a default
    with pytest.raises(TypeError, match="which post_fire never passes"):
        @on([task_completed, post_fire])
        @filter_events(lambda result: True)
        def on_both(sender: Any, **kwargs: Any) -> None: ...


def test_a_parameter_with_a_default_may_be_missing_from_some_signals() -> None:
    seen: list[tuple[str, Any]] = []

    @on([task_completed, post_fire])
    @filter_events(lambda result=None, trigger_name=None: True)
    def both(sender: Any, **kwargs: Any) -> None:
        seen.append((kwargs.get("trigger_name", "completed"), kwargs.get("result")))

    manager = TriggerManager(MemoryStorageBackend(uid="connecting-defaults"))
    manager.update_configuration({"t_ship": CONFIG["t_ship"]})
    manager.fire("paid")
    assert ("completed", {"shipped": True}) in seen and ("paid", None) in seen


@pytest.mark.usefixtures("untouched")
def test_a_receiver_that_cannot_take_the_arguments_raises_at_connection() -> None:
    with pytest.raises(TypeError) as caught:
        @on(task_completed)
        def too_few(sender: Any, task_instance: Any) -> None: ...

    message = str(caught.value)
    assert message.startswith("receiver tests.events.test_connecting.")
    assert "cannot take what task_completed passes (got an unexpected keyword argument" in message
    assert "(manager, session_uid, task_instance, result)" in message
    assert "def too_few(sender, **kwargs)" in message

    with pytest.raises(TypeError, match="multiple values for argument 'manager'"):
        @on(post_fire)
        def no_sender(manager: Any, **kwargs: Any) -> None: ...


def test_receivers_that_take_everything_by_name_or_kwargs_are_accepted() -> None:
    class Callable:
        def __call__(self, sender: Any, **kwargs: Any) -> None: ...

    def named(sender: Any, manager: Any, session_uid: Any, trigger_name: Any,
              trigger_kwargs: Any, tasks_scheduled: Any) -> None: ...

    for receiver in (Callable(), named):
        on(post_fire)(receiver)


# -- signals --------------------------------------------------------------------------------------


@pytest.mark.usefixtures("untouched")
def test_signals_that_are_not_ours_are_refused() -> None:
    with pytest.raises(TypeError, match=r"pass the signal, not its name: from triggerhooks\.signals "
                                        r"import task_completed"):
        on("task_completed")  # type: ignore[arg-type]
    with pytest.raises(TypeError) as caught:
        on(blinker.signal("post_fire"))
    assert "a blinker signal named 'post_fire', but not triggerhooks' own" in str(caught.value)
    assert str(caught.value).endswith("from triggerhooks.signals import post_fire")
    with pytest.raises(LookupError, match="no signal 'task_complete' \\(did you mean "
                                          "'task_completed'\\?"):
        namespace.signal("task_complete")
    assert namespace.signal("post_fire") is post_fire


def test_an_applications_own_signals_are_connected_as_they_are() -> None:
    plain, own = Signal(), blinker.signal("tests.order_shipped")
    calls: list[Any] = []

    @on([plain, own], sender="anything")
    @filter_events(lambda anything: True)  # no payload to check against: found when sent
    def record(sender: Any, **kwargs: Any) -> None:
        calls.append(sender)

    send_event(own, "anything", anything=1)
    assert calls == ["anything"]


def test_an_applications_ordered_signal_with_a_payload_is_checked_too() -> None:
    class OrderShipped(SessionPayload):
        order_id: int

    order_shipped = OrderedSignal("tests.order_shipped", payload=OrderShipped)
    assert order_shipped.fields == ("manager", "session_uid", "order_id")
    with pytest.raises(TypeError, match=r"which tests\.order_shipped never passes"):
        on(order_shipped)(filter_events(lambda order: True)(lambda sender, **kw: None))


# -- senders --------------------------------------------------------------------------------------


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize(("signal", "sender", "message"), [
    (task_completed, not_a_task, "not_a_task is a plain function, not a task: declare it with "
                                 "@trigger_task"),
    (task_completed, "tests.connecting.ship_order",
     "a sender is the task itself, not its name 'tests.connecting.ship_order': pass the "
     "@trigger_task function or the TriggerTask class, or select by name with "
     "@filter_events(lambda sender_name: sender_name == 'tests.connecting.ship_order')"),
    (task_completed, ChargeCard(), "pass the task class, sender=ChargeCard, not an instance"),
    (task_completed, TriggerManager, "task-level signals are sent by the task class, not by the "
                                     "manager class TriggerManager; for one manager, filter"),
    (post_fire, ship_order, "session-level signals are sent by the manager class, not by a task"),
    (pre_fire, ChargeCard, "session-level signals are sent by the manager class, not by a task"),
    (post_fire, TriggerManager(MemoryStorageBackend(uid="connecting-sender")),
     "pass the manager class, sender=TriggerManager, not a manager"),
    (post_fire, None, "sender=None is not 'any sender' (it would select only the signals of "
                      "tasks not registered in this process): leave sender out"),
    ([post_fire, task_completed], TriggerManager, r"@on\(task_completed, sender=...\)"),
])
def test_a_sender_of_the_wrong_kind_raises_at_connection(signal: Any, sender: Any,
                                                          message: str) -> None:
    with pytest.raises(TypeError, match=message if "\\(" in message else None) as caught:
        on(signal, sender=sender)(lambda sender, **kwargs: None)
    if "\\(" not in message:
        assert message in str(caught.value)


def test_a_task_function_is_accepted_wherever_a_task_class_is() -> None:
    by_function: list[Any] = []
    by_class: list[Any] = []
    on(task_completed, sender=ship_order)(lambda sender, **kw: by_function.append(sender))
    on(task_completed, sender=ChargeCard)(lambda sender, **kw: by_class.append(sender))
    ship_class = ship_order.__trigger_task__  # type: ignore[attr-defined]

    manager = TriggerManager(MemoryStorageBackend(uid="connecting-one-meaning"))
    manager.update_configuration(CONFIG)
    with capture_signals(task_completed, sender=ship_order) as captured, \
            capture_signals(task_completed) as everything:
        manager.fire("paid")
        manager.fire("ordered")
    assert by_function == [ship_class] and by_class == [ChargeCard]
    assert [each.sender for each in captured] == [ship_class]
    assert [each.sender for each in everything.of(task_completed, sender=ship_order)] == [ship_class]
    assert [each.sender for each in everything.of("task_completed", sender=ChargeCard)] == [ChargeCard]

    # send_event: the function by position or by keyword, as Django's and Caluma's code does
    send_event(task_completed, ship_order, manager=manager, session_uid="s",
               task_instance=manager.storage["t_ship#0"], result={})
    send_event(task_completed, sender=ship_order, manager=manager, session_uid="s",
               task_instance=manager.storage["t_ship#0"], result={})
    assert by_function == [ship_class] * 3
    with pytest.raises(TypeError, match="got the sender twice"):
        send_event(task_completed, ship_order, sender=ship_order)


def test_predicates_can_ask_for_the_senders_name() -> None:
    class AuditedManager(TriggerManager):
        pass

    names: list[tuple[str, Any]] = []
    on(task_completed)(filter_events(lambda sender_name: names.append(("task", sender_name)))(
        lambda sender, **kw: None))
    on(post_fire)(filter_events(lambda sender_name, trigger_name: trigger_name == "paid"
                                and names.append(("session", sender_name)))(
        lambda sender, **kw: None))
    on(session_signal := pre_fire)(filter_events(lambda **kwargs: names.append(
        ("all", kwargs["sender_name"])))(lambda sender, **kw: None))
    assert session_signal is pre_fire

    manager = TriggerManager(MemoryStorageBackend(uid="connecting-names"))
    manager.update_configuration(CONFIG)
    manager.fire("paid")
    manager.fire("ordered")
    AuditedManager(MemoryStorageBackend(uid="connecting-names-2")).fire("paid")
    assert ("task", "tests.connecting.ship_order") in names
    assert ("task", "tests.connecting.ChargeCard") in names
    assert [each for each in names if each[0] == "session"] == [("session", "default"),
                                                                 ("session", None)]
    assert ("all", "default") in names


def test_other_mistakes_seen_when_connecting() -> None:
    class Ping(typing.TypedDict):
        n: int

    ping = OrderedSignal("tests.ping", payload=Ping)
    with pytest.raises(ValueError, match=r"tests\.ping passes no manager, so a background receiver"):
        on(ping, background=True)
    with pytest.raises(TypeError, match="filter_events cannot read the parameters of"):
        filter_events(bool)
    with pytest.raises(TypeError, match="filter_events filters a receiver function, not 42"):
        filter_events(lambda: True)(42)  # type: ignore[type-var]
