"""What the manager sends, when, and in which order; vetoes and raise_exception receivers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.backends import BACKENDS
from triggerhooks import (
    SignalHandlingError,
    StatusChange,
    TriggerManager,
    capture_signals,
    connected,
    on,
)
from triggerhooks.signals import (
    post_fire,
    post_replay,
    post_skip,
    pre_fire,
    pre_replay,
    pre_skip,
    session_finalized,
    task_completed,
    task_failed,
    task_scheduled,
    task_started,
)
from triggerhooks.task import TaskContext, TriggerTask
from triggerhooks.testing.signals import CapturedSignals


class FinishWithStatus(TriggerTask):
    """Ends its instance through a StatusChange with a cascade."""

    name = "tests.signal_order.FinishWithStatus"

    def _run(self, context: TaskContext) -> StatusChange:
        return StatusChange("finished", {"note": "by status"}, cascade=True,
                            cascade_kwargs={"via": "status"})


class RetryOnce(TriggerTask):
    name = "tests.signal_order.RetryOnce"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        if not context.task_instance.metadata.get("retries"):
            raise self.retry(exc=ValueError("flaky"))
        return {"attempt": 2}


def steps(sent: CapturedSignals) -> list[tuple[str, str | None]]:
    """Each signal with the trigger or instance it is about."""
    out: list[tuple[str, str | None]] = []
    for s in sent:
        instance = s.kwargs.get("task_instance")
        out.append((s.name, s.kwargs.get("trigger_name") or (instance.name if instance else None)))
    return out


def veto(trigger: str) -> Any:
    def receiver(sender: Any, trigger_name: str, **kwargs: Any) -> None:
        if trigger_name == trigger:
            raise PermissionError(f"{trigger} is vetoed")
    return receiver


def test_order_of_one_fire_that_completes_a_task_inline(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.echo"}})
    with capture_signals() as sent:
        manager.fire("a", {"x": 1})
    assert steps(sent) == [
        ("pre_fire", "a"),
        ("task_scheduled", "t#0"),
        ("post_fire", "a"),
        ("task_started", "t#0"),
        ("pre_fire", "t"),               # the cascade: t's result fires "t"
        ("task_completed", "t#0"),
        ("post_fire", "t"),
        ("pre_fire", "sessionFinalized"),
        ("post_fire", "sessionFinalized"),
        ("session_finalized", None),
    ]
    assert sent.of(post_fire)[0]["tasks_scheduled"][0].name == "t#0"
    assert sent.of(post_fire)[1]["trigger_kwargs"] == {"received": {"a": {"x": 1}}}
    assert all(s["manager"] is manager and s["session_uid"] == manager.storage.uid
               for s in sent)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)  # what is stored, seen from receivers
def test_post_signals_see_the_stored_state(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.echo"},
                                  "bad": {"after": ["a"], "run": "tests.boom"}})
    seen: dict[str, Any] = {}

    def look(sender: Any, manager: TriggerManager, **kwargs: Any) -> None:
        storage = manager.storage
        if "task_instance" in kwargs:
            name = kwargs["task_instance"].name
            seen[f"{name} when {kwargs['task_instance'].status}"] = storage[name].status
        elif "trigger_name" in kwargs:
            seen[f"fired {kwargs['trigger_name']}"] = kwargs["trigger_name"] in storage.latest_kwargs
        else:
            seen["finalized"] = storage.is_finalized

    signals = [task_scheduled, task_started, task_completed, task_failed, post_fire,
               session_finalized]
    with connected(look, signals):
        manager.fire("a")
    assert seen == {
        "t#0 when scheduled": "scheduled", "bad#0 when scheduled": "scheduled",
        "t#0 when running": "running", "bad#0 when running": "running",
        "t#0 when finished": "finished", "bad#0 when failed": "failed",
        "fired a": True, "fired t": True,
    }


def test_completed_carries_the_result_and_failed_the_exception(manager: TriggerManager) -> None:
    manager.update_configuration({"ok": {"after": ["a"], "run": "tests.echo"},
                                  "bad": {"after": ["a"], "run": "tests.boom"}})
    with capture_signals(task_completed, task_failed) as sent:
        manager.fire("a", {"k": "v"})
    (completed,), (failed,) = sent.of(task_completed), sent.of(task_failed)
    assert completed["result"] == {"received": {"a": {"k": "v"}}}
    assert completed["result"] == manager.storage["ok#0"].metadata["result"]
    assert isinstance(failed["exception"], ValueError) and str(failed["exception"]) == "boom"
    assert manager.storage["bad#0"].metadata["exceptionType"] == "ValueError"


def test_a_pre_fire_veto_stores_nothing(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.echo"}})
    before = manager.storage.debug_repr()
    with connected(veto("a"), pre_fire, raise_exception=True), capture_signals() as sent, \
            pytest.raises(SignalHandlingError, match="a is vetoed") as caught:
        manager.fire("a", {"x": 1})
    assert isinstance(caught.value.caught_exceptions[0], PermissionError)
    assert manager.storage.debug_repr() == before
    assert sent.names == ["pre_fire"]


def test_a_failing_pre_fire_receiver_without_raise_exception_vetoes_nothing(
        manager: TriggerManager, caplog: pytest.LogCaptureFixture) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.echo"}})
    with connected(veto("a"), pre_fire):
        manager.fire("a")
    assert manager.storage["t#0"].status == "finished"
    assert "a is vetoed" in caplog.text


def test_a_vetoed_cascade_fails_the_finishing_instance(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.echo"},
                                  "next": {"after": ["t"], "run": "tests.echo"}})
    with connected(veto("t"), pre_fire, raise_exception=True), \
            capture_signals(task_failed) as failed:
        manager.fire("a")  # the task's failure is stored, never raised
    instance = manager.storage["t#0"]
    assert instance.status == "failed"
    assert instance.metadata["exceptionType"] == "triggerhooks.exceptions.SignalHandlingError"
    assert "t" not in manager.storage.latest_kwargs
    assert manager.storage.instances_of_task("next") == []
    assert isinstance(failed[0]["exception"], SignalHandlingError)


def test_a_raising_post_signal_receiver_raises_after_all_work_is_done(
        manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.echo"},
                                  "next": {"after": ["t"], "run": "tests.echo"}})
    later = []
    with connected(veto("a"), post_fire, raise_exception=True), \
            connected(lambda sender, **kw: later.append(kw["task_instance"].name), task_completed), \
            pytest.raises(SignalHandlingError, match="a is vetoed"):
        manager.fire("a")
    assert manager.storage["t#0"].status == "finished"
    assert manager.storage["next#0"].status == "finished"
    assert manager.storage.is_finalized
    assert later == ["t#0", "next#0"]


def test_a_raising_task_started_receiver_does_not_keep_the_task_from_running(
        manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.echo"}})

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("started receiver broke")

    with connected(broken, [task_started, task_completed], raise_exception=True), \
            pytest.raises(SignalHandlingError) as caught:
        manager.fire("a")
    assert manager.storage["t#0"].status == "finished"
    assert str(caught.value) == "started receiver broke, started receiver broke"


def test_every_scheduled_instance_is_handed_off_when_a_receiver_raises(
        manager: TriggerManager) -> None:
    manager.update_configuration({"one": {"after": ["a"], "run": "tests.echo"},
                                  "two": {"after": ["a"], "run": "tests.echo"}})

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("completed receiver broke")

    with connected(broken, task_completed, raise_exception=True), \
            pytest.raises(SignalHandlingError):
        manager.fire("a")
    assert manager.storage["one#0"].status == "finished"
    assert manager.storage["two#0"].status == "finished"


def test_a_status_change_with_a_cascade_sends_fire_signals(manager: TriggerManager) -> None:
    manager.update_configuration({"s": {"after": ["a"], "run": FinishWithStatus.name}})
    with capture_signals() as sent:
        manager.fire("a")
    assert steps(sent)[3:7] == [("task_started", "s#0"), ("pre_fire", "s"),
                                ("task_completed", "s#0"), ("post_fire", "s")]
    assert sent.of(task_completed)[0]["result"] == {"via": "status"}


def test_a_status_change_keeps_its_status_when_a_post_signal_receiver_raises(
        manager: TriggerManager) -> None:
    manager.update_configuration({"s": {"after": ["a"], "run": FinishWithStatus.name}})

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver broke")

    with connected(broken, task_completed, raise_exception=True), \
            pytest.raises(SignalHandlingError):
        manager.fire("a")
    assert manager.storage["s#0"].status == "finished"
    assert manager.storage["s#0"].metadata["note"] == "by status"


def test_a_status_change_whose_cascade_is_vetoed_fails(manager: TriggerManager) -> None:
    manager.update_configuration({"s": {"after": ["a"], "run": FinishWithStatus.name}})
    with connected(veto("s"), pre_fire, raise_exception=True):
        manager.fire("a")
    assert manager.storage["s#0"].status == "failed"


def test_replay_order_and_veto(manager: TriggerManager) -> None:
    manager.update_configuration({"bad": {"after": ["a"], "run": "tests.boom"}})
    manager.fire("a")
    before = manager.storage.debug_repr()

    def no_replays(sender: Any, **kwargs: Any) -> None:
        raise PermissionError("no replays today")

    with connected(no_replays, pre_replay, raise_exception=True), \
            pytest.raises(SignalHandlingError, match="no replays today"):
        manager.replay_failed_instance("bad#0")
    assert manager.storage.debug_repr() == before

    with capture_signals() as sent:
        copy = manager.replay_failed_instance("bad#0", {"a": {"second": True}})
    assert steps(sent) == [
        ("pre_replay", "bad#0"),
        ("task_scheduled", "bad#1"),
        ("post_replay", "bad#1"),
        ("task_started", "bad#1"),
        ("task_failed", "bad#1"),
    ]
    assert sent[0]["task_instance"].status == "failed"
    assert sent.of(post_replay)[0]["parent"] == "bad#0" and copy.name == "bad#1"
    assert all(s.sender.name == "tests.boom" for s in sent)


def test_skip_order_with_cascade_and_veto(manager: TriggerManager) -> None:
    manager.update_configuration({"bad": {"after": ["a"], "run": "tests.boom"},
                                  "next": {"after": ["bad"], "run": "tests.echo"}})
    manager.fire("a")
    before = manager.storage.debug_repr()
    with connected(veto("bad"), pre_fire, raise_exception=True), \
            pytest.raises(SignalHandlingError):
        manager.skip_failed_instance("bad#0", cascade=True, result={"skipped": 1})
    assert manager.storage.debug_repr() == before

    with capture_signals() as sent:
        manager.skip_failed_instance("bad#0", cascade=True, result={"skipped": 1})
    assert steps(sent) == [
        ("pre_skip", "bad#0"),
        ("pre_fire", "bad"),
        ("task_scheduled", "next#0"),
        ("post_fire", "bad"),
        ("post_skip", "bad#0"),
        ("task_started", "next#0"),
        ("pre_fire", "next"),
        ("task_completed", "next#0"),
        ("post_fire", "next"),
        ("pre_fire", "sessionFinalized"),
        ("post_fire", "sessionFinalized"),
        ("session_finalized", None),
    ]
    assert sent.of(pre_skip)[0]["cascade"] is True
    assert sent.of(post_skip)[0]["task_instance"].status == "skipped"


def test_a_retry_sends_failed_scheduled_and_post_replay(manager: TriggerManager) -> None:
    manager.update_configuration({"r": {"after": ["a"], "run": RetryOnce.name}})
    with capture_signals() as sent:
        manager.fire("a")
    assert steps(sent)[3:] == [
        ("task_started", "r#0"),
        ("task_failed", "r#0"),
        ("task_scheduled", "r#1"),
        ("post_replay", "r#1"),
        ("task_started", "r#1"),
        ("pre_fire", "r"),
        ("task_completed", "r#1"),
        ("post_fire", "r"),
        ("pre_fire", "sessionFinalized"),
        ("post_fire", "sessionFinalized"),
        ("session_finalized", None),
    ]
    assert str(sent.of(task_failed)[0]["exception"]) == "flaky"


def test_unless_abandons_with_a_signal(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a", "b"], "unless": ["stop"],
                                        "run": "tests.echo"}})
    manager.fire("a")
    with capture_signals() as sent:
        manager.fire("stop")
    assert ("instance_abandoned", "t#0") in steps(sent)
    assert manager.storage["t#0"].status == "abandoned"


def test_a_status_set_by_hand_sends_task_signals(manager: TriggerManager) -> None:
    manager.update_configuration({"bad": {"after": ["a"], "run": "tests.boom"}})
    manager.fire("a")
    with capture_signals() as sent:
        manager.update_instance_status("bad#0", "finished", cascade=True,
                                       cascade_kwargs={"fixed": True})
    assert steps(sent)[:3] == [("pre_fire", "bad"), ("task_completed", "bad#0"),
                               ("post_fire", "bad")]
    assert sent.of(task_completed)[0]["result"] == {"fixed": True}


@pytest.mark.parametrize(("status", "expected"), [
    ("unstarted", []), ("scheduled", ["task_scheduled"]), ("running", ["task_started"]),
    ("finished", ["task_completed"]), ("failed", ["task_failed"]), ("replayed", []),
    ("skipped", []), ("abandoned", ["instance_abandoned"]),
])
def test_the_task_signal_of_each_status_set_by_hand(manager: TriggerManager, status: str,
                                                    expected: list[str]) -> None:
    # the table of docs/events.md: which signal update_instance_status sends for each status
    manager.update_configuration({"bad": {"after": ["a"], "run": "tests.boom"}})
    manager.fire("a")
    with capture_signals() as sent:
        manager.update_instance_status("bad#0", status)
    task_signals = [name for name in sent.names if name.startswith(("task_", "instance_"))]
    assert task_signals[:1] == expected  # (a scheduled one runs again: more follow)
    assert sent.names[:1] == expected or not expected  # sent first


def test_on_decorated_receivers_in_a_module_style(manager: TriggerManager) -> None:
    # The shape of the contract's example: sender filter plus predicate.
    notified: list[str] = []

    @on(task_completed, sender=RetryOnce)
    def notify(sender: Any, task_instance: Any, result: Any, **kwargs: Any) -> None:
        notified.append(f"{task_instance.name}: {result}")

    manager.update_configuration({"r": {"after": ["a"], "run": RetryOnce.name},
                                  "e": {"after": ["a"], "run": "tests.echo"}})
    manager.fire("a")
    assert notified == ["r#1: {'attempt': 2}"]


def test_fire_signals_pass_the_kwargs_as_stored(manager: TriggerManager) -> None:
    with capture_signals(pre_fire, post_fire) as sent:
        manager.fire("a", {"ids": (1, 2), "nested": {"flag": True}})
    assert [s["trigger_kwargs"] for s in sent] == [{"ids": [1, 2], "nested": {"flag": True}}] * 2
    assert manager.storage.latest_kwargs["a"] == sent[0]["trigger_kwargs"]
