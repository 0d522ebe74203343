"""An application's own events: ``declare_event``, and everything a core signal offers."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NotRequired, TypedDict

import blinker
import pytest

from tests.events import named_receivers as background
from triggerhooks import (
    EventDeclarationError,
    InlineTaskRunner,
    MemoryStorageBackend,
    TriggerManager,
    capture_signals,
    connected,
    declare_event,
    filter_events,
    on,
    send_event,
)
from triggerhooks.events import declared_events, known_events
from triggerhooks.events.background import BackgroundCall
from triggerhooks.events.table import event_json, events_markdown, first_line
from triggerhooks.runners import task_runners
from triggerhooks.serialization import dumps, loads
from triggerhooks.signals import EventArgument, OrderedSignal, namespace, post_fire
from triggerhooks.testing import registered_class


class CompleteWorkItem:
    """The mutation that emits the events below (a sender, as in Caluma)."""


class CancelCase:
    """Another mutation."""


class WorkItemEvent(TypedDict):
    work_item: Annotated[str, "the work item's id"]
    user: str
    context: NotRequired[dict[str, Any]]


class Shipped(TypedDict):
    manager: TriggerManager
    session_uid: str
    order_id: int


def completed_work_item() -> OrderedSignal:
    return declare_event(
        "tests.completed_work_item", WorkItemEvent,
        doc="A work item was completed.\n\nSent once its status is stored.",
        emitted_by="`CompleteWorkItem`", order="after `tests.created_work_item`")


def test_a_typed_declaration_describes_its_arguments() -> None:
    event = completed_work_item()
    assert isinstance(event, OrderedSignal) and event.name == "tests.completed_work_item"
    assert event.payload is WorkItemEvent
    assert event.fields == ("work_item", "user", "context")
    assert event.arguments == (
        EventArgument("work_item", "str", "the work item's id"),
        EventArgument("user", "str"),
        EventArgument("context", "dict[str, Any]", required=False),
    )
    assert event.declared_in == __name__
    assert declared_events()["tests.completed_work_item"] is event
    assert known_events()[:len(namespace)] == list(namespace.values())
    assert known_events()[-1] is event


def test_a_declaration_by_names_and_descriptions() -> None:
    event = declare_event("tests.case_cancelled", {"case": "the case", "user": "who cancelled it"},
                          doc="A case was cancelled.", emitted_by="`CancelCase`")
    assert event.payload is None
    assert event.arguments == (EventArgument("case", None, "the case"),
                               EventArgument("user", None, "who cancelled it"))
    quiet = declare_event("tests.heartbeat", doc="Nothing to say.")
    assert quiet.fields == () and quiet.described
    with pytest.raises(TypeError, match=r"unexpected beat\): it passes no arguments"):
        send_event(quiet, beat=1)


def test_received_with_a_sender_and_a_predicate() -> None:
    event = completed_work_item()
    mails: list[tuple[Any, str]] = []

    @on(event, sender=CompleteWorkItem)
    @filter_events(lambda work_item: work_item.startswith("review-"))
    def send_mail(sender: Any, work_item: str, user: str, **kwargs: Any) -> None:
        mails.append((sender, work_item))

    for sender in (CompleteWorkItem, CancelCase):
        for work_item in ("review-1", "draft-2"):
            send_event(event, sender=sender, work_item=work_item, user="ada", context={})
    send_event(event, CompleteWorkItem, work_item="review-3", user="ada")  # context: NotRequired
    assert mails == [(CompleteWorkItem, "review-1"), (CompleteWorkItem, "review-3")]


def test_receivers_and_predicates_are_checked_against_the_declaration() -> None:
    event = completed_work_item()
    with pytest.raises(TypeError, match=r"'work_iten', which tests\.completed_work_item never "
                                        r"passes \(did you mean 'work_item'\?"):
        on(event)(filter_events(lambda work_iten: True)(lambda sender, **kwargs: None))
    with pytest.raises(TypeError, match=r"cannot take what tests\.completed_work_item passes"):
        on(event)(lambda sender, work_item: None)
    with pytest.raises(TypeError, match="missing user"):
        send_event(event, CompleteWorkItem, work_item="w")


def test_priorities_order_its_receivers() -> None:
    event = declare_event("tests.ordered", {"n": "a number"}, doc="Ordered.")
    order: list[str] = []
    on(event, priority=-5)(lambda sender, **kw: order.append("audit"))
    on(event)(lambda sender, **kw: order.append("work"))
    on(event, priority=100, raise_exception=True)(lambda sender, **kw: order.append("check"))
    send_event(event, n=1)
    assert order == ["check", "work", "audit"]


def test_background_receivers_run_through_the_sessions_runner() -> None:
    shipped = declare_event("tests.shipped", Shipped, doc="An order was shipped.")
    background.calls.clear()
    manager = TriggerManager(MemoryStorageBackend(uid="declared-background"))
    with connected(background.record, shipped, background=True):
        send_event(shipped, TriggerManager, manager=manager, session_uid="s", order_id=7)
    [call] = background.calls
    assert (call["sender"], call["order_id"], call["manager"]) == (TriggerManager, 7, manager)

    quiet = declare_event("tests.no_manager", {"order_id": "the order"}, doc="No session.")
    with pytest.raises(ValueError, match="passes no manager"):
        on(quiet, background=True)(background.record)


class CapturingRunner(InlineTaskRunner):
    """Keeps background calls instead of making them."""

    name = "tests.declared.capture"
    calls: list[BackgroundCall] = []

    def schedule_receiver(self, manager: TriggerManager, call: BackgroundCall) -> None:
        self.calls.append(call)


def test_a_background_call_of_a_declared_event_travels_as_json() -> None:
    shipped = declare_event("tests.shipped", Shipped, doc="An order was shipped.")
    background.calls.clear()
    CapturingRunner.calls = []
    with registered_class(task_runners, "tests.declared.capture", CapturingRunner), \
            connected(background.record, shipped, background=True):
        manager = TriggerManager(MemoryStorageBackend(uid="declared-json"),
                                 task_runner="tests.declared.capture")
        send_event(shipped, sender=TriggerManager, manager=manager, session_uid="s", order_id=7)
        [captured] = CapturingRunner.calls
        document = loads(dumps(captured.to_json()))
        assert document["signal"] == "tests.shipped"
        assert document["sender"] == {"manager": "default"}
        BackgroundCall.from_json(document).run(manager)
    [call] = background.calls
    assert (call["sender"], call["order_id"]) == (TriggerManager, 7)


def test_the_same_declaration_again_is_the_same_signal() -> None:
    event = completed_work_item()
    seen: list[str] = []
    on(event)(lambda sender, work_item, **kw: seen.append(work_item))
    again = declare_event("tests.completed_work_item", WorkItemEvent, doc="Completed, reworded.",
                          order="last")
    assert again is event and first_line(event) == "Completed, reworded."
    assert event.order == "last"
    send_event(again, work_item="w", user="u")
    assert seen == ["w"]


def test_other_arguments_under_a_declared_name_are_refused() -> None:
    completed_work_item()
    with pytest.raises(EventDeclarationError) as caught:
        declare_event("tests.completed_work_item", {"work_item": "", "user": ""}, doc="Other.")
    assert str(caught.value).startswith(
        "event 'tests.completed_work_item' is declared already (in "
        "tests.events.test_declared_events) with work_item: str, user: str, context: "
        "dict[str, Any]; declared again (in tests.events.test_declared_events) with "
        "work_item, user")
    assert isinstance(caught.value, ValueError)
    assert declared_events()["tests.completed_work_item"].payload is WorkItemEvent


@pytest.mark.parametrize(("name", "arguments", "doc", "error", "message"), [
    ("post_fire", None, "Mine.", EventDeclarationError, "one of triggerhooks' own signals"),
    ("", None, "Empty.", TypeError, "non-empty string"),
    ("tests.x", None, "", TypeError, "doc is a non-empty string"),
    ("tests.x", ["a", "b"], "List.", TypeError, "a TypedDict class or a mapping"),
    ("tests.x", dict, "Not typed.", TypeError, "a TypedDict class or a mapping"),
    ("tests.x", {"sender": "who"}, "Sender.", ValueError, "argument named 'sender'"),
])
def test_mistakes_in_a_declaration(name: str, arguments: Any, doc: str, error: type[Exception],
                                   message: str) -> None:
    with pytest.raises(error, match=message):
        declare_event(name, arguments, doc=doc)
    assert "tests.x" not in declared_events()


def test_look_alikes_of_a_declared_event_are_refused() -> None:
    event = completed_work_item()
    with pytest.raises(TypeError, match=r"pass the signal, not its name: the one "
                                        r"declare_event\('tests\.completed_work_item', \.\.\.\)"):
        on("tests.completed_work_item")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"not the event declared under that name in "
                                        r"tests\.events\.test_declared_events"):
        on(blinker.signal("tests.completed_work_item"))
    on(event)(lambda sender, **kwargs: None)


def test_capture_signals_records_a_declared_event() -> None:
    event = completed_work_item()
    with capture_signals(event, sender=CompleteWorkItem) as sent:
        send_event(event, sender=CompleteWorkItem, work_item="w", user="u")
        send_event(event, sender=CancelCase, work_item="x", user="u")
    assert [(each.sender, each["work_item"]) for each in sent] == [(CompleteWorkItem, "w")]


def test_its_row_in_the_events_table() -> None:
    event = completed_work_item()
    assert events_markdown([event]).splitlines()[2] == (
        "| `tests.completed_work_item` | `WorkItemEvent` | `CompleteWorkItem` | `work_item` (the "
        "work item's id), `user`, `context` | after `tests.created_work_item` |")
    assert events_markdown().splitlines()[-1] == events_markdown([event]).splitlines()[-1]
    assert event_json(event) == {
        "name": "tests.completed_work_item",
        "doc": "A work item was completed.\n\nSent once its status is stored.",
        "payload": "WorkItemEvent",
        "sender": None,
        "emitted_by": "`CompleteWorkItem`",
        "arguments": [
            {"name": "work_item", "type": "str", "description": "the work item's id",
             "required": True},
            {"name": "user", "type": "str", "description": "", "required": True},
            {"name": "context", "type": "dict[str, Any]", "description": "", "required": False},
        ],
        "order": "after `tests.created_work_item`",
        "declared_in": "tests.events.test_declared_events",
    }
    pipe = declare_event("tests.pipe", {"a": "x | y"}, doc="Pipes.")
    assert "`a` (x \\| y)" in events_markdown([pipe])


MODULE = '''
from triggerhooks import declare_event

order_shipped = declare_event("tests.reloaded.order_shipped", {{"order_id": "the order"}},
                              doc="{doc}")
'''


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("declared_reloaded", None)


def test_a_reloaded_module_keeps_its_event_and_receivers(module_dir: Path) -> None:
    path = module_dir / "declared_reloaded.py"
    path.write_text(textwrap.dedent(MODULE.format(doc="Shipped.")))
    module = importlib.import_module("declared_reloaded")
    event = module.order_shipped
    assert event.declared_in == "declared_reloaded"
    got: list[int] = []
    on(event)(lambda sender, order_id, **kw: got.append(order_id))

    path.write_text(textwrap.dedent(MODULE.format(doc="Shipped to the customer.")))
    importlib.invalidate_caches()
    reloaded = importlib.reload(module)
    assert reloaded.order_shipped is event
    assert first_line(event) == "Shipped to the customer."
    send_event(reloaded.order_shipped, order_id=3)
    assert got == [3]


def test_core_signals_are_described_like_declared_events() -> None:
    for signal in namespace.values():
        assert isinstance(signal, OrderedSignal)
        assert signal.described and signal.emitted_by and signal.order and first_line(signal)
        assert signal.declared_in == "triggerhooks.signals"
    assert [each.type for each in post_fire.arguments] == [
        "TriggerManager", "str", "str", "JsonDict", "list[TaskInstance]"]
