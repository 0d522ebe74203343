"""Task runners: inline (a work queue, no recursion), threading (join_all), choosing one."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from tests.helpers import settle
from triggerhooks import (
    InlineTaskRunner,
    TaskContext,
    ThreadingTaskRunner,
    TriggerManager,
    UnknownKeyError,
    trigger_task,
)
from triggerhooks.exceptions import RunnerError
from triggerhooks.manager import TASK_RUNNER_ENV
from triggerhooks.runners import TaskRunner, task_runners
from triggerhooks.storages import StorageBackend
from triggerhooks.testing import HoldingRunner, registered_class

_RELEASE = threading.Event()


@trigger_task(name="test_runners.wait_for_release")
def wait_for_release(context: TaskContext) -> dict[str, Any]:
    if not _RELEASE.wait(timeout=30):
        raise TimeoutError("never released")
    return {}


@trigger_task(name="test_runners.join_from_task")
def join_from_task(context: TaskContext) -> dict[str, Any]:
    try:
        ThreadingTaskRunner.join_all(timeout=1)
    except RunnerError as exc:
        return {"error": str(exc)}
    return {"error": None}


@trigger_task(name="test_runners.depth")
def depth(context: TaskContext) -> dict[str, Any]:
    frame, count = sys._getframe(), 0
    while frame is not None:
        frame, count = frame.f_back, count + 1
    return {"depth": count}


# -- inline --------------------------------------------------------------------------------


def test_inline_runs_tasks_in_the_calling_thread_before_fire_returns(
        storage: StorageBackend) -> None:
    manager = TriggerManager(storage, task_runner="inline")
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.thread_name"}})
    manager.fire("a")
    assert manager.storage["t#0"].metadata["result"] == {
        "thread": threading.current_thread().name}


def test_inline_cascades_do_not_deepen_the_stack(manager: TriggerManager) -> None:
    configuration = {"t0": {"after": ["start"], "run": "test_runners.depth"}}
    for n in range(1, 30):
        configuration[f"t{n}"] = {"after": [f"t{n - 1}"], "run": "test_runners.depth"}
    manager.update_configuration(configuration)
    manager.fire("start")
    depths = {manager.storage[f"t{n}#0"].metadata["result"]["depth"] for n in range(1, 30)}
    assert len(depths) == 1  # every task after the first runs at the same stack depth


@pytest.mark.slow
def test_a_cascade_chain_of_ten_thousand_tasks_runs_inline(storage: StorageBackend) -> None:
    manager = TriggerManager(storage, task_runner="inline")
    # On PostgreSQL each hop is four round trips to a server process: a chain twice the
    # recursion limit shows the same loop (benchmarks/storage.py shows it flat to 10,000).
    count = 2_000 if storage.name == "postgresql" else 10_000
    configuration = {"t0": {"after": ["start"], "run": "tests.noop"}}
    for n in range(1, count):
        configuration[f"t{n}"] = {"after": [f"t{n - 1}"], "run": "tests.noop"}
    manager.update_configuration(configuration)
    manager.fire("start")
    assert count > sys.getrecursionlimit()
    last = manager.storage[f"t{count - 1}#0"]
    assert last.status == "finished"
    assert manager.get_unresolved_instances() == []
    assert len(manager.storage) == count


def test_inline_runs_in_order_of_scheduling(manager: TriggerManager) -> None:
    manager.update_configuration({
        "first": {"after": ["a"], "run": "tests.noop"},
        "second": {"after": ["a"], "run": "tests.noop"},
        "after_first": {"after": ["first"], "run": "tests.noop"},
    })
    manager.fire("a")
    started = sorted(manager.storage, key=lambda i: i.metadata["timestamps"]["running"])
    assert [i.task_name for i in started] == ["first", "second", "after_first"]


def test_a_task_firing_into_another_session_runs_that_sessions_tasks_too(
        make_storage: Any) -> None:
    other = TriggerManager(make_storage())
    other.update_configuration({"o": {"after": ["ping"], "run": "tests.echo"}})

    @trigger_task(name="test_runners.pings_other")
    def pings_other(context: TaskContext) -> dict[str, Any]:
        TriggerManager(make_storage(other.storage.uid)).fire("ping", {"from": "main"})
        return {}

    manager = TriggerManager(make_storage())
    manager.update_configuration({"t": {"after": ["a"], "run": "test_runners.pings_other"}})
    manager.fire("a")
    assert other.storage["o#0"].status == "finished"
    assert other.storage["o#0"].kwargs == {"ping": {"from": "main"}}


# -- threading -----------------------------------------------------------------------------


def test_threading_runs_each_instance_in_its_own_thread(storage: StorageBackend) -> None:
    manager = TriggerManager(storage, task_runner="threading")
    manager.update_configuration({"t": {"andEvery": "p", "run": "tests.thread_name"}})
    for _ in range(3):
        manager.fire("p")
    settle()
    threads = {i.metadata["result"]["thread"] for i in manager.storage}
    assert threads == {"triggerhooks t#0", "triggerhooks t#1", "triggerhooks t#2"}


def test_join_all_waits_for_cascades(storage: StorageBackend) -> None:
    manager = TriggerManager(storage, task_runner="threading")
    configuration = {"t0": {"after": ["start"], "run": "tests.noop"}}
    for n in range(1, 20):
        configuration[f"t{n}"] = {"after": [f"t{n - 1}"], "run": "tests.noop"}
    manager.update_configuration(configuration)
    manager.fire("start")
    ThreadingTaskRunner.join_all(timeout=30)
    assert manager.storage["t19#0"].status == "finished"
    assert ThreadingTaskRunner.active_count() == 0


def test_join_all_from_a_task_thread_is_an_error(storage: StorageBackend) -> None:
    manager = TriggerManager(storage, task_runner="threading")
    manager.update_configuration({"t": {"after": ["a"], "run": "test_runners.join_from_task"}})
    manager.fire("a")
    settle()
    assert manager.storage["t#0"].metadata["result"] == {
        "error": "join_all() cannot be called from a task thread: it would wait for itself"}


def test_join_all_gives_up_after_its_timeout(storage: StorageBackend) -> None:
    manager = TriggerManager(storage, task_runner="threading")
    manager.update_configuration({"t": {"after": ["a"], "run": "test_runners.wait_for_release"}})
    _RELEASE.clear()
    manager.fire("a")
    try:
        with pytest.raises(RunnerError, match=r"1 task thread\(s\) still running after 0.05s"):
            ThreadingTaskRunner.join_all(timeout=0.05)
    finally:
        _RELEASE.set()
    settle()
    assert manager.storage["t#0"].status == "finished"


@pytest.mark.parametrize("timeout", [float("inf"), 1e300])
def test_join_all_with_an_endless_timeout_waits_as_without_one(storage: StorageBackend,
                                                               timeout: float) -> None:
    manager = TriggerManager(storage, task_runner="threading")
    manager.update_configuration({"t": {"after": ["a"], "run": "test_runners.wait_for_release"}})
    _RELEASE.clear()
    manager.fire("a")
    assert ThreadingTaskRunner.active_count() == 1  # it waits for the release
    release = threading.Timer(0.05, _RELEASE.set)
    release.start()
    try:
        ThreadingTaskRunner.join_all(timeout=timeout)
    finally:
        _RELEASE.set()
        release.cancel()
    assert manager.storage["t#0"].status == "finished"


def test_join_all_refuses_a_nan_timeout() -> None:
    with pytest.raises(ValueError, match="not nan"):
        ThreadingTaskRunner.join_all(timeout=float("nan"))


def test_a_thread_that_cannot_start_is_not_waited_for(storage: StorageBackend) -> None:
    """The process is out of threads (here: no stack can be that large): the hand-off fails
    with a RunnerError saying what to do, and join_all does not wait for that thread."""
    manager = TriggerManager(storage, task_runner="threading")
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.noop"}})
    manager.fire("warm up")  # connections are open before threads cannot start
    usual = threading.stack_size(1 << 60)
    try:
        with pytest.raises(RunnerError, match=r"cannot start a thread for t#0 \(it stays "
                                              r"scheduled: hand it off again") as raised:
            manager.fire("a")
    finally:
        threading.stack_size(usual)
    assert raised.value.committed is True
    assert ThreadingTaskRunner.active_count() == 0
    ThreadingTaskRunner.join_all(timeout=5)
    manager.update_instance_status("t#0", "scheduled")
    settle()
    assert manager.storage["t#0"].status == "finished"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # 3.12+: forking with threads
def test_a_forked_child_does_not_wait_for_its_parent_s_task_threads(
        storage: StorageBackend) -> None:
    """They do not exist in the child: its join_all waited for them forever."""
    manager = TriggerManager(storage, task_runner="threading")
    manager.update_configuration({"t": {"after": ["a"], "run": "test_runners.wait_for_release"}})
    _RELEASE.clear()
    manager.fire("a")
    assert ThreadingTaskRunner.active_count() == 1
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: reported by its exit code
        code = 1
        try:
            ThreadingTaskRunner.join_all(timeout=5)
            code = 0 if ThreadingTaskRunner.active_count() == 0 else 2
        finally:
            os._exit(code)
    _RELEASE.set()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    settle()
    assert manager.storage["t#0"].status == "finished"


_FORKED_OPENS: list[Callable[[str], StorageBackend]] = []
"""How the child of ``test_runners.forks`` opens the session (the test's storage factory)."""


@trigger_task(name="test_runners.forks")
def forks(context: TaskContext) -> dict[str, Any]:
    """Forks a child that fires ``fromChild``, and reports whether the child ran ``c#0``."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: reported by its exit code
        code = 1
        try:
            child = TriggerManager(_FORKED_OPENS[-1](context.session_uid))
            child.fire("fromChild")
            code = 0 if child.storage["c#0"].status == "finished" else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return {"child": os.waitstatus_to_exitcode(status)}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # 3.12+: forking with threads
def test_a_child_forked_by_an_inline_task_runs_its_own_instances(
        make_storage: Callable[[str], StorageBackend]) -> None:
    """The child inherits the queue of the thread that forked, mid-drain: its own instances
    were queued there and never run (left scheduled)."""
    _FORKED_OPENS.append(make_storage)
    storage = make_storage("forked-inline")
    manager = TriggerManager(storage, task_runner="inline")
    manager.update_configuration({"f": {"after": ["go"], "run": "test_runners.forks"},
                                  "c": {"after": ["fromChild"], "run": "tests.noop"}})
    manager.fire("go")
    assert storage["f#0"].metadata["result"] == {"child": 0}


def test_threading_and_inline_tasks_mix_in_one_session(storage: StorageBackend) -> None:
    manager = TriggerManager(storage, task_runner="inline")
    manager.update_configuration({
        "in_thread": {"after": ["a"], "using": "threading", "run": "tests.thread_name"},
        "then_inline": {"after": ["in_thread"], "run": "tests.thread_name"},
    })
    manager.fire("a")
    settle()
    first = manager.storage["in_thread#0"].metadata["result"]["thread"]
    second = manager.storage["then_inline#0"].metadata["result"]["thread"]
    assert first == second != threading.current_thread().name  # the cascade ran in the thread


# -- choosing a runner -----------------------------------------------------------------------


class HeldByDefault(TriggerManager):
    default_task_runner_name = "held"


def test_the_default_runner_is_inline(storage: StorageBackend,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TASK_RUNNER_ENV, raising=False)
    assert TriggerManager(storage).task_runner_name == "inline"


def test_the_environment_variable_sets_the_default(storage: StorageBackend,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TASK_RUNNER_ENV, "threading")
    manager = TriggerManager(storage)
    assert manager.task_runner_name == "threading"
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.thread_name"}})
    manager.fire("a")
    settle()
    assert manager.storage["t#0"].metadata["result"]["thread"] != threading.current_thread().name


def test_a_manager_class_sets_its_default(storage: StorageBackend, held: type[HoldingRunner],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TASK_RUNNER_ENV, "threading")
    manager = HeldByDefault(storage)
    assert manager.task_runner_name == "held"  # the class attribute wins over the variable
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.noop"},
                                  "u": {"after": ["a"], "using": "inline", "run": "tests.noop"}})
    manager.fire("a")
    assert manager.storage["t#0"].status == "scheduled"
    assert manager.storage["u#0"].status == "finished"  # using wins over the default
    assert HeldByDefault(storage, task_runner="inline").task_runner_name == "inline"


def test_an_unknown_runner_is_reported_when_the_manager_is_made(
        storage: StorageBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TASK_RUNNER_ENV, "no-such-runner")
    with pytest.raises(UnknownKeyError) as caught:
        TriggerManager(storage)
    known = sorted(map(str, task_runners.keys()))  # plugins installed here may add runners
    assert {"inline", "threading"} <= set(known)
    assert str(caught.value) == (
        "unknown task runner 'no-such-runner'; known: " + ", ".join(map(repr, known)))


# -- writing a runner ------------------------------------------------------------------------


class Recording(TaskRunner):
    """Runs instances at once and remembers what it ran."""

    name = "recording"
    ran: ClassVar[list[str]] = []

    def schedule(self, manager: TriggerManager, instance_name: str, countdown: float = 0.0) -> None:
        type(self).ran.append(instance_name)
        manager.execute(instance_name)


@pytest.fixture
def recording() -> Iterator[type[Recording]]:
    with registered_class(task_runners, "recording", Recording):
        yield Recording
    Recording.ran.clear()


def test_a_custom_runner(manager: TriggerManager, recording: type[Recording]) -> None:
    manager.update_configuration({"t": {"after": ["a"], "using": "recording",
                                        "run": "tests.noop"}})
    manager.fire("a")
    assert recording.ran == ["t#0"]
    assert manager.storage["t#0"].status == "finished"
    assert isinstance(task_runners.get("recording"), TaskRunner)
    assert isinstance(task_runners.get("inline"), InlineTaskRunner)


class Broken(TaskRunner):
    name = "broken"

    def schedule(self, manager: TriggerManager, instance_name: str, countdown: float = 0.0) -> None:
        raise ConnectionError(f"broker down, cannot hand off {instance_name}")


def test_a_failed_hand_off_leaves_the_instance_scheduled_and_raises(
        manager: TriggerManager) -> None:
    with registered_class(task_runners, "broken", Broken):
        manager.update_configuration({
            "t": {"after": ["a"], "using": "broken", "run": "tests.noop"},
            "u": {"after": ["a"], "run": "tests.noop"},
        })
        with pytest.raises(ConnectionError, match="cannot hand off t#0"):
            manager.fire("a")
    assert manager.storage["t#0"].status == "scheduled"
    assert manager.storage["u#0"].status == "finished"  # the other hand-off still happened
    assert manager.storage.latest_kwargs["a"] == {}


class CountingInline(InlineTaskRunner):
    """An inline runner extended through schedule(), as subclasses do."""

    name = "counting-inline"
    seen: ClassVar[list[str]] = []

    def schedule(self, manager: TriggerManager, instance_name: str, countdown: float = 0.0) -> None:
        type(self).seen.append(instance_name)
        super().schedule(manager, instance_name, countdown)


def test_an_inline_subclass_sees_every_instance_and_keeps_the_order(
        manager: TriggerManager) -> None:
    CountingInline.seen.clear()
    with registered_class(task_runners, "counting-inline", CountingInline):
        manager.update_configuration({
            name: {"after": [trigger], "using": "counting-inline", "run": "tests.noop"}
            for name, trigger in [("first", "a"), ("second", "a"), ("after_first", "first")]})
        manager.fire("a")
    assert CountingInline.seen == ["first#0", "second#0", "after_first#0"]
    started = sorted(manager.storage, key=lambda i: i.metadata["timestamps"]["running"])
    assert [i.task_name for i in started] == ["first", "second", "after_first"]
