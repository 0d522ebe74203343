"""Assertions about task instances, for pytest (functions) and unittest (the mixin).

A failing assertion says what the instance is instead: its status, its
result, and for a failed instance the exception type, context and traceback.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ..manager import TriggerManager
from ..models import TaskInstance, TaskStatus
from ..serialization import dotted_name
from ..storages import StorageBackend

__all__ = [
    "TriggerManagerTestCaseMixin",
    "assert_instance_abandoned",
    "assert_instance_failed",
    "assert_instance_finished",
    "assert_instance_missing",
    "assert_instance_replayed",
    "assert_instance_skipped",
    "assert_instance_status",
    "assert_instance_unstarted",
    "assert_unresolved_instances",
    "assert_unresolved_tasks",
    "describe_instance",
]

Source = TriggerManager | StorageBackend
"""Assertions accept a manager or a storage."""

T = TypeVar("T")


def _storage(source: Source) -> StorageBackend:
    return source.storage if isinstance(source, TriggerManager) else source


def describe_instance(instance: TaskInstance) -> str:
    """A few lines on what an instance is: status, result or exception with traceback."""
    meta = instance.metadata
    lines = [f"{instance.name} is {instance.status.value}"]
    if instance.log_level:
        resolved = " (resolved)" if instance.logs_resolved else ""
        lines[0] += f", max log level {instance.log_level_name}{resolved}"
    if "parent" in meta:
        lines.append(f"replay of {meta['parent']}")
    if instance.status is TaskStatus.FINISHED and "result" in meta:
        lines.append(f"result: {meta['result']!r}")
    if meta.get("exceptionType"):
        lines.append(f"exception: {meta['exceptionType']}")
        if meta.get("exceptionContext"):
            lines.append(f"exception context: {meta['exceptionContext']!r}")
        if meta.get("exceptionInfo"):
            lines.append("traceback:\n" + textwrap.indent(str(meta["exceptionInfo"]).rstrip(), "  "))
    return "\n".join(lines)


def _known(storage: StorageBackend) -> str:
    names = sorted(storage.instances)
    return ", ".join(names) if names else "none"


def assert_instance_status(source: Source, name: str, status: TaskStatus | str) -> TaskInstance:
    """Assert that instance ``name`` exists and has ``status``; returns it."""
    storage = _storage(source)
    expected = TaskStatus(status)
    instance = storage.get(name)
    if instance is None:
        raise AssertionError(f"expected {name} to be {expected.value}, but session {storage.uid!r} "
                             f"has no such instance (instances: {_known(storage)})")
    if instance.status is not expected:
        raise AssertionError(f"expected {name} to be {expected.value}, but "
                             f"{describe_instance(instance)}")
    return instance


def assert_instance_finished(source: Source, name: str,
                             expected_result: Mapping[str, Any] | None = None) -> TaskInstance:
    """Assert that ``name`` finished (and, if given, returned ``expected_result``)."""
    instance = assert_instance_status(source, name, TaskStatus.FINISHED)
    if expected_result is not None:
        actual = instance.metadata.get("result")
        if actual != expected_result:
            raise AssertionError(f"{name} finished with result {actual!r}, "
                                 f"expected {dict(expected_result)!r}")
    return instance


def assert_instance_failed(source: Source, name: str,
                           exc_type: type[BaseException] | str | None = None) -> TaskInstance:
    """Assert that ``name`` failed (with ``exc_type``: a class or its dotted name, if given)."""
    instance = assert_instance_status(source, name, TaskStatus.FAILED)
    if exc_type is not None:
        expected = exc_type if isinstance(exc_type, str) else dotted_name(exc_type)
        if instance.metadata.get("exceptionType") != expected:
            raise AssertionError(f"expected {name} to fail with {expected}, but "
                                 f"{describe_instance(instance)}")
    return instance


def assert_instance_abandoned(source: Source, name: str) -> TaskInstance:
    """Assert that ``name`` was abandoned (its task's ``unless`` triggers fired first)."""
    return assert_instance_status(source, name, TaskStatus.ABANDONED)


def assert_instance_replayed(source: Source, name: str) -> TaskInstance:
    """Assert that ``name`` was replayed (a copy of it was scheduled)."""
    return assert_instance_status(source, name, TaskStatus.REPLAYED)


def assert_instance_skipped(source: Source, name: str) -> TaskInstance:
    """Assert that ``name`` was skipped."""
    return assert_instance_status(source, name, TaskStatus.SKIPPED)


def assert_instance_unstarted(source: Source, name: str) -> TaskInstance:
    """Assert that ``name`` exists but has not been scheduled yet."""
    return assert_instance_status(source, name, TaskStatus.UNSTARTED)


def assert_instance_missing(source: Source, name: str) -> None:
    """Assert that ``name`` has not been created."""
    instance = _storage(source).get(name)
    if instance is not None:
        raise AssertionError(f"expected {name} not to exist, but {describe_instance(instance)}")


def _compare(what: str, actual: Iterable[str], expected: Iterable[str], detail: str) -> None:
    got, wanted = sorted(actual), sorted(expected)
    if got != wanted:
        missing = sorted(set(wanted) - set(got))
        extra = sorted(set(got) - set(wanted))
        raise AssertionError(f"unresolved {what} are {got}, expected {wanted} (missing: {missing}, "
                             f"unexpected: {extra}){detail}")


def assert_unresolved_tasks(source: Source, task_names: Iterable[str]) -> None:
    """Assert which tasks are unresolved (in any order)."""
    storage = _storage(source)
    _compare("tasks", (t.name for t in storage.get_unresolved_tasks()), task_names, "")


def assert_unresolved_instances(source: Source, instance_names: Iterable[str]) -> None:
    """Assert which instances are unresolved (in any order)."""
    storage = _storage(source)
    unresolved = storage.get_unresolved_instances()
    detail = "".join(f"\n  {i.name}: {i.status.value}" for i in unresolved)
    _compare("instances", (i.name for i in unresolved), instance_names, detail)


class TriggerManagerTestCaseMixin:
    """Assertions for ``unittest.TestCase`` subclasses that set ``self.manager`` in ``setUp``.

    The method names are those of the original Triggers framework.
    """

    manager: TriggerManager

    def _check(self, assertion: Callable[..., T], *args: Any) -> T:
        manager = getattr(self, "manager", None)
        if manager is None:
            raise AttributeError("set self.manager in setUp(), e.g. "
                                 "TriggerManager(MemoryStorageBackend(uid))")
        try:
            return assertion(manager, *args)
        except AssertionError as exc:
            failure: type[BaseException] = getattr(self, "failureException", AssertionError)
            raise failure(str(exc)) from None

    def assertInstanceStatus(self, instance_name: str,
                             expected_status: TaskStatus | str) -> TaskInstance:
        return self._check(assert_instance_status, instance_name, expected_status)

    def assertInstanceFinished(self, instance_name: str,
                               expected_result: Mapping[str, Any] | None = None) -> TaskInstance:
        return self._check(assert_instance_finished, instance_name, expected_result)

    def assertInstanceFailed(self, instance_name: str,
                             exc_type: type[BaseException] | str) -> TaskInstance:
        return self._check(assert_instance_failed, instance_name, exc_type)

    def assertInstanceAbandoned(self, instance_name: str) -> TaskInstance:
        return self._check(assert_instance_abandoned, instance_name)

    def assertInstanceMissing(self, instance_name: str) -> None:
        self._check(assert_instance_missing, instance_name)

    def assertInstanceReplayed(self, instance_name: str) -> TaskInstance:
        return self._check(assert_instance_replayed, instance_name)

    def assertInstanceSkipped(self, instance_name: str) -> TaskInstance:
        return self._check(assert_instance_skipped, instance_name)

    def assertInstanceUnstarted(self, instance_name: str) -> TaskInstance:
        return self._check(assert_instance_unstarted, instance_name)

    def assertUnresolvedTasks(self, task_names: Iterable[str]) -> None:
        self._check(assert_unresolved_tasks, task_names)

    def assertUnresolvedInstances(self, instance_names: Iterable[str]) -> None:
        self._check(assert_unresolved_instances, instance_names)
