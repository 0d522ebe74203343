"""``triggerhooks events``: every known event (the core's, plugins', declared in imported
modules) as the events table, as text, Markdown and JSON."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.helpers import ROOT
from triggerhooks import filter_events, on, send_event
from triggerhooks.cli import cli
from triggerhooks.events import declared_events
from triggerhooks.events.modules import RECEIVER_MODULES_ENV, _reset_receiver_modules
from triggerhooks.plugins import registered
from triggerhooks.signals import namespace

APP_EVENTS = '''
from typing import Annotated, TypedDict

from triggerhooks import declare_event


class CompleteWorkItem:
    """A mutation."""


class WorkItemEvent(TypedDict):
    work_item: Annotated[str, "the work item's id"]
    user: str


completed_work_item = declare_event(
    "{prefix}.completed_work_item", WorkItemEvent,
    doc="A work item was completed.\\n\\nMore about it.",
    emitted_by="`CompleteWorkItem`", order="after `{prefix}.created_work_item`")
'''

RECEIVERS = '''
from triggerhooks import declare_event, on

case_cancelled = declare_event("{prefix}.case_cancelled", {{"case": "the case"}},
                               doc="A case was cancelled.", emitted_by="`CancelCase`")
'''

PLUGIN = '''
from triggerhooks.plugins import hookimpl


@hookimpl
def triggerhooks_receiver_modules():
    return ["{package}.events"]
'''

PLUGIN_EVENTS = '''
from triggerhooks import declare_event

order_shipped = declare_event("{prefix}.order_shipped", {{"order_id": "the order"}},
                              doc="An order was shipped.", order="last")
'''


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], str]]:
    """Write modules to a directory on sys.path (dotted names make packages); forget them,
    and which receiver modules were loaded, afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(RECEIVER_MODULES_ENV, raising=False)
    written: list[str] = []

    def write_module(name: str, source: str) -> str:
        path = tmp_path.joinpath(*name.split("."))
        if "." in name:
            path.parent.mkdir(parents=True, exist_ok=True)
            (path.parent / "__init__.py").touch()
        path.with_suffix(".py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        written.append(name)
        return name

    _reset_receiver_modules()
    yield write_module
    _reset_receiver_modules()
    tops = {name.split(".")[0] for name in written}
    for name in list(sys.modules):
        if name.split(".")[0] in tops:
            sys.modules.pop(name, None)


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200", **(env or {})})


def listed(result: Result) -> dict[str, dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return {event["name"]: event for event in json.loads(result.output)["events"]}


def test_an_application_event_declared_listed_and_received_with_a_predicate(
        write: Callable[[str, str], str]) -> None:
    prefix = f"app{uuid.uuid4().hex[:8]}"
    module = write(f"{prefix}_events", APP_EVENTS.format(prefix=prefix))

    events = listed(invoke("events", "--import", module, "--json"))
    assert list(events)[:len(namespace)] == list(namespace)
    row = events[f"{prefix}.completed_work_item"]
    assert row == {
        "name": f"{prefix}.completed_work_item",
        "doc": "A work item was completed.\n\nMore about it.",
        "payload": "WorkItemEvent",
        "sender": None,
        "emitted_by": "`CompleteWorkItem`",
        "arguments": [
            {"name": "work_item", "type": "str", "description": "the work item's id",
             "required": True},
            {"name": "user", "type": "str", "description": "", "required": True},
        ],
        "order": f"after `{prefix}.created_work_item`",
        "declared_in": module,
        "source": "application",
    }

    app = sys.modules[module]
    mails: list[str] = []

    @on(app.completed_work_item, sender=app.CompleteWorkItem)
    @filter_events(lambda work_item, user: work_item.startswith("review-") and user != "bot")
    def send_mail(sender: Any, work_item: str, **kwargs: Any) -> None:
        mails.append(work_item)

    for work_item, user in [("review-1", "ada"), ("draft-2", "ada"), ("review-3", "bot")]:
        send_event(app.completed_work_item, sender=app.CompleteWorkItem, work_item=work_item,
                   user=user)
    assert mails == ["review-1"]


def test_receiver_modules_and_plugins_are_loaded_and_named_as_sources(
        write: Callable[[str, str], str]) -> None:
    prefix = f"src{uuid.uuid4().hex[:8]}"
    receivers = write(f"{prefix}_receivers", RECEIVERS.format(prefix=prefix))
    package = f"{prefix}_plugin"
    write(f"{package}.events", PLUGIN_EVENTS.format(prefix=prefix))
    (Path(sys.path[0]) / package / "__init__.py").write_text(PLUGIN.format(package=package))
    importlib.invalidate_caches()

    with registered(importlib.import_module(package), name=f"{prefix}-plugin"):
        events = listed(invoke("events", "--json", f"{prefix}.*",
                               env={RECEIVER_MODULES_ENV: receivers}))
        assert {name: event["source"] for name, event in events.items()} == {
            f"{prefix}.order_shipped": f"plugin {prefix}-plugin",
            f"{prefix}.case_cancelled": "application",
        }
        assert events[f"{prefix}.case_cancelled"]["arguments"] == [
            {"name": "case", "type": None, "description": "the case", "required": True}]

        markdown = invoke("events", "--markdown", f"{prefix}.*")
    assert markdown.exit_code == 0, markdown.output
    assert markdown.output.splitlines() == [
        "| event | payload | emitted by | arguments | order |",
        "| --- | --- | --- | --- | --- |",
        f"| `{prefix}.order_shipped` | — | — | `order_id` (the order) | last |",
        f"| `{prefix}.case_cancelled` | — | `CancelCase` | `case` (the case) | — |",
    ]


def test_modules_named_by_the_global_option_or_its_variable_are_imported_too(
        write: Callable[[str, str], str]) -> None:
    prefix = f"env{uuid.uuid4().hex[:8]}"
    module = write(f"{prefix}_events", APP_EVENTS.format(prefix=prefix))
    by_variable = listed(invoke("events", "--json", f"{prefix}.*",
                                env={"TRIGGERHOOKS_IMPORT": module}))
    assert list(by_variable) == [f"{prefix}.completed_work_item"]
    by_option = listed(invoke("--import", module, "events", "--json", f"{prefix}.*"))
    assert by_option == by_variable


def test_the_core_signals_as_a_table() -> None:
    result = invoke("events")
    assert result.exit_code == 0, result.output
    for signal in namespace.values():
        assert signal.name in result.output
    assert "trigger_kwargs: JsonDict — as they are" in result.output
    assert "update_instance_status(…, \"finished\")" in result.output  # Markdown made plain
    assert "`" not in result.output

    core = listed(invoke("events", "--json", "task_*", "post_fire"))
    assert list(core) == ["post_fire", "task_scheduled", "task_started", "task_completed",
                          "task_failed"]
    assert {event["source"] for event in core.values()} == {"triggerhooks"}
    assert core["task_completed"]["sender"] == "task"


def test_mistakes() -> None:
    result = invoke("events", "shop.*")
    assert result.exit_code == 1
    assert result.output.startswith("error: no event matches shop.* (import the modules that "
                                    "declare your events with --import MODULE)")
    both = invoke("events", "--json", "--markdown")
    assert both.exit_code == 2 and "--json or --markdown, not both" in both.output
    missing = invoke("events", "--import", "no_such_module_here")
    assert missing.exit_code == 1
    assert "error: cannot import module 'no_such_module_here'" in missing.output


@pytest.mark.slow  # the console script in a subprocess
def test_the_console_script_lists_what_import_and_receiver_modules_declare(
        tmp_path: Path) -> None:
    (tmp_path / "shop_events.py").write_text(textwrap.dedent(APP_EVENTS.format(prefix="shop")))
    (tmp_path / "shop_receivers.py").write_text(textwrap.dedent(RECEIVERS.format(prefix="shop")))
    environ = {key: value for key, value in os.environ.items()
               if not key.startswith("TRIGGERHOOKS_")}
    environ.update({"PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "200",
                    RECEIVER_MODULES_ENV: "shop_receivers"})

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(Path(sys.executable).with_name("triggerhooks")), *args],
                              capture_output=True, text=True, env=environ, cwd=tmp_path,
                              timeout=120, check=False)

    done = run("--import", "shop_events", "events", "--json")
    assert done.returncode == 0, done.stderr
    names = [event["name"] for event in json.loads(done.stdout)["events"]]
    assert names == [*namespace, "shop.completed_work_item", "shop.case_cancelled"]

    table = run("events", "--import", "shop_events", "shop.*")
    assert table.returncode == 0, table.stderr
    assert "shop.completed_work_item" in table.stdout
    assert "work_item: str — the work item's id" in table.stdout
    assert "A work item was completed." in table.stdout and "More about it" not in table.stdout

    nothing = run("events", "other.*")
    assert (nothing.returncode, nothing.stdout) == (1, "")
    assert nothing.stderr.startswith("error: no event matches other.*")
    assert declared_events().keys().isdisjoint({"shop.completed_work_item"})  # not in this process
