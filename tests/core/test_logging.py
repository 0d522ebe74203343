"""The task logger: context variables, the max level per instance, exceptions, resolving logs."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.helpers import settle
from triggerhooks import TaskContext, TaskInstance, TaskStatus, TriggerManager, trigger_task
from triggerhooks.exceptions import with_context

CUSTOM = logging.getLogger("test_logging.custom")


@trigger_task(name="test_logging.logs")
def logs(context: TaskContext) -> dict[str, Any]:
    """Logs ``messages`` ([level, text] pairs), then maybe fails or retries."""
    settings = context.trigger_kwargs["a"]
    logger_arg = CUSTOM if settings.get("custom") else None
    with context.get_logger_context({"app_version": "1.2"}, logger=logger_arg) as logger:
        for level, message in settings.get("messages", []):
            logger.log(level, message, extra={"context": {"message": message}})
        if settings.get("seed_style"):
            logger.warning("Missing givenNames", extras={"context": {"page": {"q": 1}}})
        if settings.get("fail"):
            raise with_context(ValueError("failed spam check"), {"score": 0.4})
        if settings.get("retry") and not context.task_instance.metadata.get("retries"):
            raise context.retry(ValueError("later"))
    if settings.get("fail_outside"):
        raise ValueError("outside the logger context")
    return {}


def _run(manager: TriggerManager, **settings: Any) -> TaskInstance:
    manager.update_configuration({"t": {"after": ["a"], "run": "test_logging.logs"}})
    manager.fire("a", settings)
    settle()
    return manager.storage["t#0"]


def _records(caplog: pytest.LogCaptureFixture, name: str = __name__) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == name]


def test_records_carry_the_context(any_manager: TriggerManager,
                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _run(any_manager, messages=[[logging.INFO, "hello"]], seed_style=True)
    first, second = _records(caplog)
    base = {"session": any_manager.storage.uid, "taskInstance": "t#0", "app_version": "1.2"}
    assert (first.levelname, first.getMessage()) == ("INFO", "hello")
    assert first.context == {**base, "message": "hello"}  # type: ignore[attr-defined]
    assert second.context == {**base, "page": {"q": 1}}  # type: ignore[attr-defined]


def test_records_point_at_the_task_code(manager: TriggerManager,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _run(manager, messages=[[logging.INFO, "hello"]], seed_style=True)
    assert {(r.funcName, r.filename) for r in _records(caplog)} == {("logs", "test_logging.py")}


def test_the_max_level_is_stored_on_the_instance(any_manager: TriggerManager,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    instance = _run(any_manager, messages=[[logging.INFO, "a"], [logging.WARNING, "b"],
                                           [logging.DEBUG, "c"]])
    assert instance.status == "finished"
    assert (instance.log_level, instance.log_level_name) == (logging.WARNING, "WARNING")


@trigger_task(name="test_logging.logs_beyond_64_bits")
def logs_beyond_64_bits(context: TaskContext) -> dict[str, Any]:
    """Logs at levels Python accepts but no 64-bit integer holds, and at a bool."""
    with context.get_logger_context() as logger:
        logger.log(True, "a bool is an int to logging")
        logger.log(10**30, "beyond any named level")
    return {}


def test_a_level_beyond_64_bits_is_stored_as_the_highest(any_manager: TriggerManager) -> None:
    """The instance ends (it was left running, and fire() raised UnstorableKwargsError)."""
    any_manager.update_configuration({"t": {"after": ["a"],
                                            "run": "test_logging.logs_beyond_64_bits"}})
    any_manager.fire("a")
    settle()
    instance = any_manager.storage["t#0"]
    assert instance.status == "finished"
    assert instance.log_level == 2**63 - 1 and type(instance.log_level) is int


def test_a_bool_level_is_stored_as_an_int(manager: TriggerManager) -> None:
    @trigger_task(name="test_logging.logs_at_a_bool")
    def logs_at_a_bool(context: TaskContext) -> None:
        with context.get_logger_context() as logger:
            logger.log(True, "level 1")

    manager.update_configuration({"t": {"after": ["a"], "run": "test_logging.logs_at_a_bool"}})
    manager.fire("a")
    instance = manager.storage["t#0"]
    assert (instance.log_level, instance.log_level_name) == (1, "Level 1")
    assert type(instance.log_level) is int


def test_an_instance_that_logged_nothing_has_level_notset(manager: TriggerManager) -> None:
    instance = _run(manager)
    assert (instance.log_level, instance.log_level_name) == (logging.NOTSET, "NOTSET")
    assert instance.logs_resolved


def test_levels_count_even_when_logging_drops_the_records(
        manager: TriggerManager, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger=__name__)
    instance = _run(manager, messages=[[logging.ERROR, "dropped"]])
    assert _records(caplog) == []
    assert instance.log_level == logging.ERROR


def test_a_custom_logger(manager: TriggerManager, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _run(manager, custom=True, messages=[[logging.INFO, "to the custom logger"]])
    assert [r.getMessage() for r in _records(caplog, "test_logging.custom")] == [
        "to the custom logger"]
    assert _records(caplog) == []


def test_an_exception_inside_the_block_is_logged_with_its_context(
        any_manager: TriggerManager, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    instance = _run(any_manager, fail=True)
    (record,) = _records(caplog)
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "ValueError: failed spam check"
    assert record.exc_info is not None and record.exc_info[0] is ValueError
    assert record.context == {  # type: ignore[attr-defined]
        "session": any_manager.storage.uid, "taskInstance": "t#0", "app_version": "1.2",
        "score": 0.4}
    assert instance.status == "failed"
    assert instance.log_level == logging.ERROR
    assert instance.metadata["exceptionContext"] == {"score": 0.4}
    manager_records = _records(caplog, "triggerhooks.manager")
    assert not any("failed spam check" in r.getMessage() for r in manager_records)  # once


def test_an_exception_outside_the_block_is_not_logged_by_the_task_logger(
        manager: TriggerManager, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    instance = _run(manager, fail_outside=True)
    assert _records(caplog) == []
    assert instance.status == "failed"
    assert instance.log_level == logging.NOTSET
    (warning,) = [r for r in _records(caplog, "triggerhooks.manager")
                  if "outside the logger context" in r.getMessage()]
    assert warning.levelno == logging.WARNING


def test_a_retry_is_not_logged_as_an_error(manager: TriggerManager,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _run(manager, retry=True)
    assert _records(caplog) == []
    assert [i.status for i in manager.storage.instances_of_task("t")] == ["replayed", "finished"]


def test_with_context_merges_and_returns_the_exception() -> None:
    error = with_context(ValueError("x"), {"a": 1})
    assert with_context(error, {"b": 2}) is error
    assert error.context == {"a": 1, "b": 2}  # type: ignore[attr-defined]


# -- resolving logs ----------------------------------------------------------------------------


def test_unresolved_logs_until_marked_resolved(any_manager: TriggerManager) -> None:
    any_manager.update_configuration({"t": {"after": ["a"], "run": "test_logging.logs"},
                                      "quiet": {"after": ["a"], "run": "tests.noop"}})
    any_manager.fire("a", {"messages": [[logging.WARNING, "look at this"]]})
    settle()
    storage = any_manager.storage
    assert [i.name for i in storage.get_instances_with_unresolved_logs()] == ["t#0"]
    assert storage.get_instances_with_unresolved_logs(logging.ERROR) == []
    assert not storage["t#0"].logs_resolved
    resolved = any_manager.mark_instance_logs_resolved("t#0")
    assert resolved.logs_resolved and resolved.logs_marked_resolved
    assert resolved.log_level == logging.WARNING  # the level stays on record
    assert storage["t#0"] == resolved
    assert storage.get_instances_with_unresolved_logs() == []


def test_info_logs_need_no_review(manager: TriggerManager) -> None:
    instance = _run(manager, messages=[[logging.INFO, "fine"]])
    assert instance.logs_resolved
    assert manager.storage.get_instances_with_unresolved_logs(logging.DEBUG) == []


@pytest.mark.parametrize("status", ["replayed", "skipped", "abandoned"])
def test_superseded_instances_need_no_review(manager: TriggerManager, status: str) -> None:
    instance = _run(manager, fail=True)
    assert manager.storage.get_instances_with_unresolved_logs() == [instance]
    updated = manager.update_instance_status("t#0", status)
    assert updated.logs_resolved and not updated.logs_marked_resolved
    assert manager.storage.get_instances_with_unresolved_logs() == []


def test_logs_resolved_on_a_plain_instance() -> None:
    assert not TaskInstance("t#0", TaskStatus.FAILED, log_level=logging.WARNING).logs_resolved
    assert TaskInstance("t#0", TaskStatus.FAILED, log_level=logging.WARNING,
                        logs_marked_resolved=True).logs_resolved
    assert TaskInstance("t#0", TaskStatus.REPLAYED, log_level=logging.ERROR).logs_resolved


# -- the library's own logging -------------------------------------------------------------------

QUIET_APP = """
import logging, sys
{setup}
from triggerhooks import MemoryStorageBackend, TriggerManager, on, trigger_task
from triggerhooks.signals import post_fire


@trigger_task(name="app.fails")
def fails(context):
    raise ValueError("a task failed")


@on(post_fire)
def broken(sender, **kwargs):
    raise RuntimeError("a receiver failed")


manager = TriggerManager(MemoryStorageBackend(uid="quiet"))
manager.update_configuration({{"t": {{"after": ["go"], "run": "app.fails"}}}})
manager.fire("go")
assert manager.storage["t#0"].status == "failed"
"""


@pytest.mark.slow  # two interpreters
def test_the_library_prints_nothing_unless_the_application_configures_logging() -> None:
    import subprocess
    import sys

    from tests.helpers import ROOT

    def run(setup: str) -> str:
        done = subprocess.run([sys.executable, "-c", QUIET_APP.format(setup=setup)], cwd=ROOT,
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout == ""
        return done.stderr

    assert run("") == ""  # no "No handlers could be found", no last-resort printing
    configured = run("logging.basicConfig(format='%(levelname)s %(name)s: %(message)s')")
    assert "WARNING triggerhooks.manager: quiet: task instance t#0 failed: ValueError: " in configured
    assert "ERROR triggerhooks.events: receiver __main__.broken of signal post_fire failed" in configured


def test_the_library_logs_through_its_own_loggers() -> None:
    """Every ``logging.getLogger(...)`` of the package names a ``triggerhooks`` logger (the
    task logger excepted: it is the task's module's, the application's own)."""
    import ast

    import triggerhooks
    from tests.helpers import ROOT

    assert any(isinstance(handler, logging.NullHandler)
               for handler in logging.getLogger("triggerhooks").handlers)
    package = ROOT / "triggerhooks"
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "getLogger" and node.args):
                found.append((path.relative_to(ROOT).as_posix(), ast.unparse(node.args[0])))
    allowed = {"__name__", "'triggerhooks.events'", "'triggerhooks.manager'",
               "'triggerhooks.plugins'"}
    others = [(path, arg) for path, arg in found if arg not in allowed]
    assert others == [
        # The command line quiets a library's retries (it logs through nothing of its own).
        ("triggerhooks/cli/app.py", "'psycopg.pool'"),
        ("triggerhooks/task.py", "type(self.task).__module__"),
    ], others
    assert triggerhooks.__name__ == "triggerhooks"
