"""Typed payloads: each signal's ``TypedDict`` is what the core really sends, and what the
signal table of docs/events.md lists."""

from __future__ import annotations

import re
import types
import typing
from typing import Any

import pytest

from tests.helpers import ROOT
from triggerhooks import (
    MemoryStorageBackend,
    StatusChange,
    TaskConfig,
    TaskInstance,
    TriggerManager,
    TriggerTask,
    capture_signals,
    trigger_task,
)
from triggerhooks import signals as signals_module
from triggerhooks.serialization import JsonDict
from triggerhooks.signals import OrderedSignal, SessionPayload, namespace
from triggerhooks.task import TaskContext

COMMON = tuple(SessionPayload.__annotations__)
"""``manager`` and ``session_uid``: every signal passes them."""


@trigger_task(name="tests.payloads.ok")
def ok(context: TaskContext) -> dict[str, Any]:
    return {"n": 1}


@trigger_task(name="tests.payloads.fails")
def fails(context: TaskContext) -> dict[str, Any]:
    raise ValueError("no")


@trigger_task(name="tests.payloads.retries_once")
def retries_once(context: TaskContext) -> dict[str, Any]:
    if not context.task_instance.metadata.get("retries"):
        raise context.retry(ValueError("once"))
    return {}


@trigger_task(name="tests.payloads.gives_up")
def gives_up(context: TaskContext) -> Any:
    return StatusChange("failed", {"why": "by choice"})


def hints(signal: OrderedSignal) -> dict[str, Any]:
    """The payload's field types, resolved (the payloads name types only for type checkers)."""
    names = {"TriggerManager": TriggerManager, "TaskInstance": TaskInstance,
             "TaskConfig": TaskConfig, "JsonDict": JsonDict}
    return typing.get_type_hints(signal.payload, vars(signals_module), names)


def conforms(value: Any, hint: Any) -> bool:
    """``value`` is of the (simple) type ``hint``: classes, unions, lists, dicts, Any."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, arg) for arg in args)
    if origin is list:
        return isinstance(value, list) and all(conforms(item, args[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            conforms(key, args[0]) and conforms(item, args[1]) for key, item in value.items())
    return isinstance(value, hint)


def run_every_signal() -> list[Any]:
    """A session that makes the core send each of its signals; what was sent, in order."""
    manager = TriggerManager(MemoryStorageBackend(uid="payloads"))
    with capture_signals() as sent:
        manager.update_configuration({
            "t_ok": {"after": ["go"], "run": "tests.payloads.ok"},
            "t_fails": {"after": ["go"], "run": "tests.payloads.fails"},
            "t_retries": {"after": ["go"], "run": "tests.payloads.retries_once"},
            "t_vetoed": {"after": ["later"], "unless": ["go"], "run": "tests.payloads.ok"},
            "t_chooses": {"after": ["go"], "run": "tests.payloads.gives_up"},
        })
        manager.fire("go", {"page": 1})
        manager.replay_failed_instance("t_fails#0")
        manager.skip_failed_instance("t_fails#1", cascade=True, result={"skipped": True})
        manager.update_instance_status("t_chooses#0", "finished", cascade=True)
    assert manager.storage.is_finalized
    return sent


@pytest.fixture(scope="module")
def sent() -> list[Any]:
    return run_every_signal()


def test_the_scenario_sends_every_signal(sent: list[Any]) -> None:
    assert {each.name for each in sent} == set(namespace)


def test_each_send_passes_exactly_its_payload_with_the_declared_types(sent: list[Any]) -> None:
    for each in sent:
        signal = namespace[each.name]
        assert isinstance(signal, OrderedSignal) and signal.payload is not None
        assert set(each.kwargs) == set(signal.fields), (
            f"{each.name} sent {sorted(each.kwargs)}, its payload says {signal.fields}")
        for field, hint in hints(signal).items():
            assert conforms(each.kwargs[field], hint), (
                f"{each.name}: {field}={each.kwargs[field]!r} is no {hint}")


def test_each_sender_is_of_the_declared_kind(sent: list[Any]) -> None:
    for each in sent:
        kind = namespace[each.name].sender_kind  # type: ignore[attr-defined]
        if kind == "task":
            assert isinstance(each.sender, type) and issubclass(each.sender, TriggerTask)
        else:
            assert kind == "manager" and each.sender is TriggerManager, each.name


def test_payloads_are_typed_dicts_sharing_the_session_fields() -> None:
    for name, signal in namespace.items():
        assert isinstance(signal, OrderedSignal)
        assert typing.is_typeddict(signal.payload), name
        assert signal.fields[:2] == COMMON, name
        if signal.sender_kind == "task":
            assert signal.fields[2] == "task_instance", name
        assert getattr(signals_module, signal.payload.__name__) is signal.payload
        assert signal.payload.__name__ in signals_module.__all__


def _table_rows() -> dict[str, tuple[str, list[str]]]:
    """Signal -> (payload named in the table, arguments listed), from docs/events.md."""
    text = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    table = text.split("\n## The signals\n", 1)[1].split("\n\n| event |", 1)[1].split("\n\n")[0]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        signal, payload, arguments = cells[0].strip("`"), cells[1].strip("`"), cells[3]
        without_notes = re.sub(r"\([^()]*\)", "", arguments)
        rows[signal] = (payload, re.findall(r"`(\w+)`", without_notes))
    return rows


def test_the_docs_table_lists_each_payload_and_its_arguments() -> None:
    rows = _table_rows()
    assert sorted(rows) == sorted(namespace), "one row per signal"
    for name, signal in namespace.items():
        payload, arguments = rows[name]
        assert payload == signal.payload.__name__, name  # type: ignore[attr-defined]
        assert arguments == [f for f in signal.fields if f not in COMMON], name  # type: ignore[attr-defined]


TYPED_RECEIVER = '''
from typing import Unpack

from triggerhooks import TriggerTask, on
from triggerhooks.signals import TaskCompleted, task_completed


@on(task_completed)
def receiver(sender: type[TriggerTask], **kwargs: Unpack[TaskCompleted]) -> None:
    reveal_type(kwargs["task_instance"])
    reveal_type(kwargs["result"])
    kwargs["task_instanse"]
'''


@pytest.mark.slow  # a type checker's cold start
def test_a_type_checker_knows_a_receivers_arguments_from_its_payload(tmp_path: Any) -> None:
    """What an editor completes: the payload's keys, each with its type; a typo is an error."""
    import subprocess
    import sys

    (tmp_path / "receiver.py").write_text(TYPED_RECEIVER)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
         "--no-error-summary", str(tmp_path / "receiver.py")],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    lines = [line.split(": ", 1)[1] for line in done.stdout.splitlines()]
    assert lines == [
        'note: Revealed type is "triggerhooks.models.TaskInstance"',
        'note: Revealed type is "dict[str, Any]"',
        'error: TypedDict "TaskCompleted" has no key "task_instanse"  [typeddict-item]',
        'note: Did you mean "task_instance"?',
    ], done.stdout + done.stderr
