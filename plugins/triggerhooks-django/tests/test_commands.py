"""``manage.py triggerhooks``: the core's commands on the project's storage, through
``call_command`` (a failure is a ``CommandError`` with the command line's exit status)
and, once, as a real ``manage.py`` process."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from triggerhooks_django import get_manager
from triggerhooks_django.commands import TASK_RUNNER_ENV, split_django_options

from triggerhooks import InlineTaskRunner, TriggerManager, task_runners, trigger_managers
from triggerhooks.cli import cli
from triggerhooks.ext import registered_class, wait_for

TESTS = Path(__file__).resolve().parent


def run(*args: str) -> str:
    """``manage.py triggerhooks ARGS``; its standard output and error, together."""
    out = io.StringIO()
    call_command("triggerhooks", *args, stdout=out, stderr=out)
    return out.getvalue()


def fails(*args: str) -> tuple[CommandError, str]:
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("triggerhooks", *args, stdout=out, stderr=out)
    return caught.value, out.getvalue()


@pytest.fixture
def failed(manager: TriggerManager, monkeypatch: pytest.MonkeyPatch) -> TriggerManager:
    """A session whose ``t#0`` failed; ``next`` waits for it."""
    manager.update_configuration({
        "t": {"after": ["go"], "run": "testapp.flaky"},
        "next": {"after": ["t"], "run": "testapp.echo"},
    })
    manager.fire("go")
    assert manager.storage["t#0"].status == "failed"
    return manager


def test_show(failed: TriggerManager, uid: str, settings: Any) -> None:
    text = run("show", uid)
    assert f"Session {uid}" in text and settings.STORAGE_URL in text
    assert "t#0" in text and "failed" in text and "RuntimeError" in text
    shown = json.loads(run("show", uid, "--json"))
    assert shown["session"] == uid
    assert {i["name"]: i["status"] for i in shown["instances"]} == {"t#0": "failed"}


def test_show_an_unknown_session_fails_with_the_cli_s_status(uid: str, settings: Any) -> None:
    error, output = fails("show", uid)
    assert error.returncode == 1
    assert str(error) == f"no session {uid!r} in {settings.STORAGE_URL}"
    assert f"error: no session {uid!r}" in output


def test_fire(manager: TriggerManager, uid: str) -> None:
    manager.update_configuration({"t": {"after": ["go"], "run": "testapp.echo"}})
    text = run("fire", uid, "go", "--kwargs", '{"n": 7}')
    assert f"fired go in session {uid}" in text
    assert "task_completed" in text  # signals are printed as they happen
    assert get_manager(uid).storage["t#0"].metadata["result"] == {"received": {"go": {"n": 7}}}
    assert "was fired already" not in run("fire", uid, "again", "--key", "k1")
    assert "key k1 was fired already" in run("fire", uid, "again", "--key", "k1")


def test_replay(failed: TriggerManager, uid: str) -> None:
    text = run("replay", uid, "t#0", "--kwargs", '{"go": {"ok": true}}')
    assert "replayed t#0 as t#1 (finished)" in text
    storage = get_manager(uid).storage
    assert [storage["t#0"].status, storage["t#1"].status] == ["replayed", "finished"]
    assert storage["next#0"].status == "finished"


def test_skip(failed: TriggerManager, uid: str) -> None:
    assert "skipped t#0 and fired its cascade" in run("skip", uid, "t#0", "--cascade",
                                                      "--result", '{"by": "hand"}')
    storage = get_manager(uid).storage
    assert storage["t#0"].status == "skipped"
    assert storage["next#0"].kwargs == {"t": {"by": "hand"}}


def test_skipping_what_did_not_fail_is_an_error(failed: TriggerManager, uid: str) -> None:
    error, _ = fails("skip", uid, "next#0")
    assert error.returncode == 1
    assert "next#0" in str(error)


class DropOnce(InlineTaskRunner):
    """Loses the first hand-off of each instance (as a process killed right after a fire)."""

    dropped: ClassVar[list[str]] = []

    def schedule(self, manager: TriggerManager, instance_name: str, countdown: float = 0.0) -> None:
        if instance_name not in self.dropped:
            self.dropped.append(instance_name)
            return
        super().schedule(manager, instance_name, countdown)


def test_recover(uid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIGGERHOOKS_CLAIM_GRACE_SECONDS", "0.2")
    with registered_class(task_runners, "django-drop-once", DropOnce):
        manager = get_manager(uid)
        manager.update_configuration({"t": {"after": ["go"], "run": "testapp.echo",
                                            "using": "django-drop-once"}})
        manager.fire("go")
        wait_for(manager.stuck, 10, "the instance to be stuck")
        assert "t#0" in run("recover", uid, "--dry-run")
        assert manager.storage["t#0"].status == "scheduled"
        report = json.loads(run("recover", uid, "--json"))
        assert [entry["instance"] for entry in report] == ["t#0"]
    assert get_manager(uid).storage["t#0"].status == "finished"
    assert "t#0" not in run("stuck", uid)


@pytest.mark.skipif("why" not in cli.commands, reason="the command line has no `why` command yet")
def test_why(manager: TriggerManager, uid: str) -> None:
    manager.update_configuration({"t": {"after": ["go", "also"], "run": "testapp.echo"}})
    manager.fire("go")
    text = run("why", uid, "t")
    assert "also" in text


def test_an_unknown_command_or_option_is_a_usage_error() -> None:
    error, output = fails("no-such-command")
    assert error.returncode == 2
    assert "No such command 'no-such-command'" in output


def test_options_on_the_command_line_win(failed: TriggerManager, uid: str) -> None:
    error, _ = fails("--storage", "memory://", "show", uid)
    assert "no session" in str(error) and "memory://" in str(error)


def test_the_settings_runner_and_manager_are_used(settings: Any, uid: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TASK_RUNNER_ENV, "inline")  # the settings win, for the command only
    class Recording(InlineTaskRunner):
        ran: ClassVar[list[str]] = []

        def schedule(self, manager: TriggerManager, instance_name: str,
                     countdown: float = 0.0) -> None:
            self.ran.append(instance_name)
            super().schedule(manager, instance_name, countdown)

    class AppManager(TriggerManager):
        fired: ClassVar[list[str]] = []

        def _post_fire(self, trigger_name: str, tasks_scheduled: list[Any]) -> None:
            self.fired.append(trigger_name)

    with registered_class(task_runners, "django-recording", Recording), \
            registered_class(trigger_managers, "django-app", AppManager):
        settings.TRIGGERHOOKS = {"storage": settings.STORAGE_URL, "task_runner": "django-recording",
                                 "manager": "django-app"}
        get_manager(uid).update_configuration({"t": {"after": ["go"], "run": "testapp.echo"}})
        run("fire", uid, "go")
    assert Recording.ran == ["t#0"]
    assert AppManager.fired == ["go", "t", "sessionFinalized"]
    assert os.environ[TASK_RUNNER_ENV] == "inline"  # as it was


def test_logging_is_left_as_it_was(failed: TriggerManager, uid: str) -> None:
    root = logging.getLogger()
    before = (root.handlers[:], root.level)
    run("--log-level", "debug", "--traceback", "show", uid)
    assert (root.handlers, root.level) == before


def test_a_password_in_the_storage_url_is_never_shown(settings: Any, uid: str) -> None:
    settings.TRIGGERHOOKS = {"storage": "redis://:s3cret@127.0.0.1:1/0?socket_connect_timeout=1"}
    error, output = fails("show", uid)
    assert "s3cret" not in str(error) + output
    assert "redis://:***@127.0.0.1:1/0" in output


def test_django_s_options_are_taken_out() -> None:
    assert split_django_options(["--settings", "p.s", "show", "--pythonpath=/x", "s", "--json",
                                 "--no-color"]) == (
        ["show", "s", "--json"], {"--settings": "p.s", "--pythonpath": "/x", "--no-color": True})
    assert split_django_options(["fire", "s", "t", "--", "--settings"]) == (
        ["fire", "s", "t", "--", "--settings"], {})


def test_graph_writes_text_to_the_callers_stream(failed: TriggerManager, uid: str) -> None:
    text = run("graph", uid, "--format", "dot")
    assert text.startswith("digraph workflow {") and "t#0" not in text and "#0 failed" in text


def manage(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "testproject.settings",
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "django", *args], capture_output=True, text=True,
                          env=env, timeout=60, check=False)


def test_as_a_real_manage_py(failed: TriggerManager, uid: str) -> None:
    done = manage("triggerhooks", "--no-color", "show", uid)
    assert done.returncode == 0, done.stderr
    assert "t#0" in done.stdout and "failed" in done.stdout
    done = manage("triggerhooks", "show", "no-such-session-" + uid)
    assert done.returncode == 1
    assert done.stderr.startswith("error: no session") and "CommandError" not in done.stderr
    done = manage("help", "triggerhooks")
    assert done.returncode == 0 and "replay" in done.stdout and "recover" in done.stdout

