"""Receiver order: by priority (higher first), then by connection, whatever the sender;
background receivers are handed off at their turn."""

from __future__ import annotations

import gc
import subprocess
import sys
from typing import Any

import pytest
from blinker import Signal

from tests.events import named_receivers as background
from triggerhooks import MemoryStorageBackend, TriggerManager, connected, on, send_event, trigger_task
from triggerhooks.signals import OrderedSignal, post_fire, task_completed
from triggerhooks.task import TaskContext


@trigger_task(name="tests.order.step")
def step(context: TaskContext) -> dict[str, Any]:
    return {}


def appender(order: list[str], label: str) -> Any:
    def receiver(sender: Any, **kwargs: Any) -> None:
        order.append(label)
    receiver.__qualname__ = receiver.__name__ = f"receiver_{label.replace(' ', '_')}"
    return receiver


def fire(trigger: str = "go") -> TriggerManager:
    manager = TriggerManager(MemoryStorageBackend(uid=f"order-{trigger}"))
    manager.update_configuration({"t": {"after": [trigger], "run": "tests.order.step"}})
    manager.fire(trigger)
    return manager


def fire_alone(trigger: str) -> None:
    """One ``post_fire``: a session without tasks."""
    TriggerManager(MemoryStorageBackend(uid=f"order-alone-{trigger}")).fire(trigger)


def test_higher_priority_first_then_connection_order_whatever_the_sender() -> None:
    order: list[str] = []
    on(task_completed, priority=-5)(appender(order, "late"))
    on(task_completed, sender=step)(appender(order, "step 0"))
    on(task_completed)(appender(order, "any 0"))
    on(task_completed, sender=step, priority=5)(appender(order, "step 5"))
    on(task_completed, priority=5)(appender(order, "any 5"))
    on(task_completed, priority=100)(appender(order, "first"))
    fire()
    assert order == ["first", "step 5", "any 5", "step 0", "any 0", "late"]


def test_connecting_again_keeps_the_place_and_sets_the_priority() -> None:
    order: list[str] = []
    a, b, c = (appender(order, name) for name in "abc")
    for receiver in (a, b, c):
        on(post_fire)(receiver)
    on(post_fire, sender=TriggerManager)(a)  # again, for a sender: keeps its place
    fire_alone("once")
    assert order == ["a", "b", "c"]
    on(post_fire, priority=1)(c)  # again with a priority: moves up, by priority
    order.clear()
    fire_alone("twice")
    assert order == ["c", "a", "b"]
    assert post_fire.priority_of(c) == 1 and post_fire.priority_of(a) == 0  # type: ignore[attr-defined]
    post_fire.disconnect(a)  # fully disconnected, then connected: last among equals
    on(post_fire)(a)
    order.clear()
    fire_alone("thrice")
    assert order == ["c", "b", "a"]


def test_plain_connect_weak_receivers_and_their_cleanup() -> None:
    signal = OrderedSignal("tests.order.weak")
    order: list[str] = []

    def strong(sender: Any, **kwargs: Any) -> None:
        order.append("strong")

    def make_weak() -> Any:
        def weak(sender: Any, **kwargs: Any) -> None:
            order.append("weak")
        return weak

    weak = make_weak()
    signal.connect(weak)  # blinker's own connect: weak, priority 0
    signal.connect(strong, priority=-1)
    send_event(signal, None)
    assert order == ["weak", "strong"]
    del weak
    gc.collect()
    order.clear()
    send_event(signal, None)
    assert order == ["strong"] and len(signal.receivers) == 1


@pytest.mark.parametrize(("priority", "seen_before"), [(10, 1), (0, 0), (-10, 0)])
def test_background_receivers_are_handed_off_at_their_turn(priority: int,
                                                            seen_before: int) -> None:
    background.calls.clear()
    seen: list[int] = []

    def blocking(sender: Any, **kwargs: Any) -> None:
        seen.append(len(background.calls))

    with connected(blocking, post_fire), \
            connected(background.record, post_fire, background=True, priority=priority):
        TriggerManager(MemoryStorageBackend(uid=f"order-background-{priority}")).fire("go")
    # the inline runner makes a background call as soon as it is handed off: before the
    # blocking receiver with a higher priority, after it with an equal (later connected) or
    # lower one
    assert seen == [seen_before]
    assert [call["trigger_name"] for call in background.calls] == ["go"]
    background.calls.clear()


def test_priority_needs_an_ordered_signal_and_an_int() -> None:
    with pytest.raises(ValueError, match=r"make it a triggerhooks\.signals\.OrderedSignal"):
        on(Signal(), priority=1)
    on(Signal(), priority=0)(appender([], "fine"))
    with pytest.raises(TypeError, match="priority is an int"):
        on(post_fire, priority="high")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="priority is an int"):
        on(post_fire, priority=True)


MODULE = """
from triggerhooks import on
from triggerhooks.signals import post_fire
ORDER = __import__("builtins").__dict__.setdefault("th_order", [])

@on(post_fire, priority={high})
def {name}_high(sender, **kwargs):
    ORDER.append("{name} {high}")

@on(post_fire, priority={low}, background={background})
def {name}_low(sender, **kwargs):
    ORDER.append("{name} {low}")
"""


@pytest.mark.parametrize("imports", [("order_a", "order_b"), ("order_b", "order_a")])
def test_priorities_order_receivers_of_modules_imported_in_any_order(
        imports: tuple[str, str], tmp_path: Any) -> None:
    (tmp_path / "order_a.py").write_text(MODULE.format(name="a", high=50, low=-50,
                                                       background=True))
    (tmp_path / "order_b.py").write_text(MODULE.format(name="b", high=10, low=-10,
                                                       background=False))
    code = (f"import {imports[0]}, {imports[1]}, builtins\n"
            "from triggerhooks import MemoryStorageBackend, TriggerManager\n"
            "TriggerManager(MemoryStorageBackend('order')).fire('go')\n"
            "print(builtins.th_order)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(["a 50", "b 10", "b -10", "a -50"])
