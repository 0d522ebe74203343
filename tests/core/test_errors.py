"""Errors: one base class; bad configurations and unstorable kwargs change nothing."""

from __future__ import annotations

import datetime
import decimal
import importlib
import pathlib
import pkgutil
import re
from typing import Any

import pytest

import triggerhooks
from triggerhooks import (
    ConfigurationError,
    InvalidStatusError,
    MemoryStorageBackend,
    Retry,
    StatusChange,
    ThreadingTaskRunner,
    TriggerhooksError,
    TriggerManager,
    TriggerTask,
    UnknownKeyError,
    UnstorableKwargsError,
    open_storage,
    trigger_task,
)
from triggerhooks.exceptions import InvalidTriggerError, Problem

CONTROL_FLOW = {Retry, StatusChange}
"""Raised by a task to tell its manager what to do next: not errors."""


def test_every_public_error_derives_from_the_base_class() -> None:
    errors: dict[str, type] = {}
    for module in pkgutil.walk_packages(triggerhooks.__path__, "triggerhooks."):
        public = importlib.import_module(module.name)
        for name in getattr(public, "__all__", ()):
            value = getattr(public, name)
            if (isinstance(value, type) and issubclass(value, BaseException)
                    and not issubclass(value, Warning) and value not in CONTROL_FLOW):
                errors[f"{value.__module__}.{value.__qualname__}"] = value
    assert "triggerhooks.sessions.SessionReferenceError" in errors
    assert "triggerhooks.events.ReceiverModuleError" in errors
    assert len(errors) > 15
    assert [name for name, error in errors.items() if not issubclass(error, TriggerhooksError)] == []


def test_an_unknown_storage_url_scheme_lists_the_known_ones() -> None:
    with pytest.raises(UnknownKeyError) as caught:
        open_storage("dynamo://admin:hunter2@db.example.com/sessions", "uid")
    error = caught.value
    assert isinstance(error, TriggerhooksError)
    assert str(error).startswith("unknown storage URL scheme 'dynamo'; known: ")
    assert {"memory", "redis", "sqlite"} <= set(error.known)
    assert str(error).endswith("(URL 'dynamo://admin:***@db.example.com/sessions')")
    with pytest.raises(UnknownKeyError, match=r"URL 'sessions\.sqlite3' has no scheme://"):
        open_storage("sessions.sqlite3", "uid")


# -- configuration -----------------------------------------------------------------------------

BAD = {
    "t_ok": {"after": ["a"], "run": "tests.echo"},
    "t_run": {"after": ["a"], "run": "app.tasks.Missing"},
    "t_using": {"after": ["a"], "run": "tests.echo", "using": "no-such-runner"},
    "t_never": {"run": "tests.echo"},
    "t_types": {"after": "a", "unless": [""], "withParams": {"a": 1}, "run": 7},
    "t_typo": {"after": ["a"], "unles": ["x"], "run": "tests.echo"},
    "t_shape_and_run": {"after": "a", "run": "app.tasks.Gone", "using": "no-such-runner"},
    "t_twice": {"after": ["a"], "andEvery": "p", "and_every": "q", "run": "tests.echo"},
    "t_extra": {"after": ["a"], "run": "tests.echo", "when": datetime.date(2024, 1, 1)},
    "t_loop1": {"after": ["t_loop2"], "run": "tests.echo"},
    "t_loop2": {"after": ["t_loop1"], "run": "tests.echo"},
    "t_self": {"andEvery": "t_self", "run": "tests.echo"},
    "": {"after": ["a"], "run": "tests.echo"},
    "t_not_a_mapping": ["after", "a"],
}


def test_a_bad_configuration_reports_every_problem_and_stores_nothing(
        manager: TriggerManager) -> None:
    manager.update_configuration({"t_before": {"after": ["a"], "run": "tests.echo"}})
    before = manager.debug_repr()
    with pytest.raises(ConfigurationError) as caught:
        manager.update_configuration(BAD)
    error = caught.value
    assert isinstance(error, TriggerhooksError) and isinstance(error, ValueError)
    found = {(p.location, p.message.split(";")[0].split(" (")[0]) for p in error.problems}
    assert found == {
        ("t_run.run", "unknown trigger task 'app.tasks.Missing'"),
        ("t_using.using", "unknown task runner 'no-such-runner'"),
        ("t_never", "needs 'after' or 'andEvery': it could never run"),
        ("t_types.after", "Input should be a valid list"),
        ("t_types.unless[0]", "String should have at least 1 character"),
        ("t_types.withParams.a", "Input should be a valid dictionary"),
        ("t_types.run", "Input should be a valid string"),
        ("t_typo.unles", "unknown directive"),
        ("t_shape_and_run.after", "Input should be a valid list"),
        ("t_shape_and_run.run", "unknown trigger task 'app.tasks.Gone'"),
        ("t_shape_and_run.using", "unknown task runner 'no-such-runner'"),
        ("t_twice.and_every", "given twice, as 'and_every' and 'andEvery'"),
        ("t_extra.when", "the value cannot be stored as JSON: Type is not JSON serializable: "
                         "datetime.date"),
        ("t_loop1", "tasks wait for each other and could never run: t_loop1 -> t_loop2 -> "
                    "t_loop1"),
        ("t_self", "tasks wait for each other and could never run: t_self -> t_self"),
        ("''", "a task name must be a non-empty string"),
        ("t_not_a_mapping", "Input should be a valid dictionary or instance of TaskSpec"),
    }
    message = str(error)
    assert message.startswith(f"invalid configuration ({len(error.problems)} problems):\n  - ")
    assert "t_typo.unles: unknown directive (did you mean 'unless'?)" in message
    assert "known: " in message and "'tests.echo'" not in message  # names are listed bare
    assert manager.debug_repr() == before  # nothing stored, not even t_ok


def test_a_task_that_fails_validation_still_has_every_other_problem_listed(
        manager: TriggerManager) -> None:
    with pytest.raises(ConfigurationError) as caught:
        manager.update_configuration({
            # a wrong type, a typo, no 'after', an unknown runner, a value that is not JSON
            "t_many": {"run": 7, "unles": ["x"], "using": "no-such-runner",
                       "when": datetime.date(2024, 1, 1)},
            "t_snake": {"and_every": 5, "run": "tests.echo"},  # the type is the one problem
            "t_twice": {"after": ["a"], "andEvery": "p", "and_every": "q", "run": ["x"]},
        })
    assert [(p.location, p.message.split(";")[0]) for p in caught.value.problems] == [
        ("t_many.run", "Input should be a valid string"),
        ("t_many.unles", "unknown directive (did you mean 'unless'?)"),
        ("t_many.when", "the value cannot be stored as JSON: Type is not JSON serializable: "
                        "datetime.date"),
        ("t_many", "needs 'after' or 'andEvery': it could never run"),
        ("t_many.using", "unknown task runner 'no-such-runner'"),
        ("t_snake.and_every", "Input should be a valid string"),
        ("t_twice.run", "Input should be a valid string"),
        ("t_twice.and_every", "given twice, as 'and_every' and 'andEvery'"),
    ]
    assert manager.storage.tasks == {}


@trigger_task(name="tests.errors.ship_order")
def ship_order(context: Any) -> dict[str, Any]:
    return {}


def charge_card(context: Any) -> dict[str, Any]:  # not declared as a task
    return {}


class ImportSubject(TriggerTask):
    name = "tests.errors.ImportSubject"

    def _run(self, context: Any) -> dict[str, Any]:
        return {}


def test_the_common_slips_say_what_to_write_instead() -> None:
    manager = TriggerManager(MemoryStorageBackend(uid="errors-slips"))  # no storage involved
    with pytest.raises(ConfigurationError) as caught:
        manager.update_configuration({
            "t_function": {"after": ["paid"], "run": ship_order},
            "t_class": {"after": ["paid"], "run": ImportSubject, "using": ThreadingTaskRunner},
            "t_object": {"after": ["paid"], "run": ImportSubject()},
            "t_plain": {"after": ["paid"], "run": charge_card},
            "t_string": {"after": "paid", "unless": "cancelled", "run": "tests.echo"},
            "t_every": {"andEvery": ["page", "section"], "run": "tests.echo"},
            "t_no_run": {"after": ["paid"]},
        })
    assert [str(problem) for problem in caught.value.problems] == [
        't_function.run: "run" takes the name a trigger task is registered under, not the '
        'function: write "run": "tests.errors.ship_order"',
        't_class.run: "run" takes the name a trigger task is registered under, not the class: '
        'write "run": "tests.errors.ImportSubject"',
        't_class.using: "using" takes the name a task runner is registered under, not the '
        'class: write "using": "threading"',
        't_object.run: "run" takes the name a trigger task is registered under, not an '
        'instance of ImportSubject: write "run": "tests.errors.ImportSubject"',
        't_plain.run: "run" takes the name of a registered trigger task, not a function: '
        'declare charge_card with @trigger_task (it is then registered as '
        '"tests.core.test_errors.charge_card", or under name=...) and write "run": that name',
        't_string.after: Input should be a valid list; write a list: "after": ["paid"]',
        't_string.unless: Input should be a valid list; write a list: "unless": ["cancelled"]',
        't_every.andEvery: Input should be a valid string; it takes one trigger: '
        '"andEvery": "page" (and list the others in "after")',
        't_no_run.run: Field required; name the registered trigger task to run: '
        '"run": "app.tasks.ImportSubject"',
    ]
    assert manager.storage.tasks == {}


def test_a_configuration_must_be_a_mapping(manager: TriggerManager) -> None:
    with pytest.raises(ConfigurationError, match="a configuration must be a mapping of task "
                                                 "names to tasks, not list"):
        manager.update_configuration([("t", {})])  # type: ignore[arg-type]


def test_a_cycle_through_an_existing_task_is_reported(manager: TriggerManager) -> None:
    manager.update_configuration({"t1": {"after": ["t2"], "run": "tests.echo"}})
    with pytest.raises(ConfigurationError, match="t1 -> t2 -> t1"):
        manager.update_configuration({"t2": {"after": ["t1"], "run": "tests.echo"}})
    assert list(manager.storage.tasks) == ["t1"]


def test_problem_text() -> None:
    assert str(Problem("t.run", "bad")) == "t.run: bad"
    assert str(Problem("", "bad")) == "bad"
    assert str(ConfigurationError([Problem("t", "bad")])) == (
        "invalid configuration (1 problem):\n  - t: bad")


# -- kwargs that cannot be stored ------------------------------------------------------------

UNSTORABLE: list[Any] = [
    {"when": datetime.datetime(2024, 1, 1)},
    {"amount": decimal.Decimal("1.5")},
    {"path": pathlib.Path("/tmp")},
    {"nested": {"set": {1, 2}}},
    {1: "not a string key"},
    {"big": 2**70},
    {"object": object()},
    ["not", "a", "mapping"],
    "text",
]


@pytest.fixture
def session(manager: TriggerManager) -> TriggerManager:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.boom"},
                                  "down": {"after": ["t"], "run": "tests.echo"}})
    manager.fire("a", {"ok": True})
    assert manager.storage["t#0"].status == "failed"
    return manager


def _shown(value: Any) -> str:
    """A test id that is the same in every process (no object address)."""
    return re.sub(r" at 0x[0-9a-f]+", "", repr(value))


@pytest.mark.parametrize("kwargs", UNSTORABLE, ids=_shown)
def test_unstorable_trigger_kwargs_are_rejected_before_anything_changes(
        session: TriggerManager, kwargs: Any) -> None:
    before = session.debug_repr()
    with pytest.raises(UnstorableKwargsError, match="kwargs of trigger 'a'") as caught:
        session.fire("a", kwargs)
    assert isinstance(caught.value, TriggerhooksError) and isinstance(caught.value, TypeError)
    assert session.debug_repr() == before


@pytest.mark.parametrize(("call", "what"), [
    (lambda m, bad: m.replay_failed_instance("t#0", replacement_kwargs=bad),
     "replacement kwargs of t#0"),
    (lambda m, bad: m.skip_failed_instance("t#0", cascade=True, result=bad),
     "result for skipped t#0"),
    (lambda m, bad: m.update_instance_status("t#0", "finished", metadata=bad),
     "metadata of t#0"),
    (lambda m, bad: m.update_instance_status("t#0", "finished", cascade=True,
                                             cascade_kwargs=bad),
     "cascade kwargs of t#0"),
    (lambda m, bad: m.update_instance_metadata("t#0", bad), "metadata of t#0"),
], ids=["replay", "skip", "status-metadata", "status-cascade", "metadata"])
def test_every_method_rejects_unstorable_values_before_anything_changes(
        session: TriggerManager, call: Any, what: str) -> None:
    before = session.debug_repr()
    with pytest.raises(UnstorableKwargsError, match=what):
        call(session, {"when": datetime.datetime(2024, 1, 1)})
    assert session.debug_repr() == before


def test_tuples_are_stored_as_lists(manager: TriggerManager) -> None:
    manager.fire("a", {"pair": (1, 2)})
    assert manager.storage.latest_kwargs["a"] == {"pair": [1, 2]}


@pytest.mark.parametrize("name", ["", None, 42])
def test_a_trigger_name_must_be_a_non_empty_string(manager: TriggerManager, name: Any) -> None:
    with pytest.raises(InvalidTriggerError, match="a trigger name must be a non-empty string"):
        manager.fire(name)
    assert manager.storage.latest_kwargs == {}


def test_invalid_status_errors_are_value_errors() -> None:
    assert issubclass(InvalidStatusError, ValueError)


def test_nothing_is_pickled() -> None:
    package = pathlib.Path(triggerhooks.__file__).parent
    uses = re.compile(r"^\s*(import|from)\s+(c?pickle|cloudpickle|dill|shelve|marshal)\b", re.M)
    assert [p.name for p in package.rglob("*.py") if uses.search(p.read_text())] == []
