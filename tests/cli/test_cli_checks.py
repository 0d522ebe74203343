"""The command line never reports success for work that failed to start (issue 13, item 4).

``fire``, ``replay`` and ``skip --cascade`` refuse a session whose tasks name something
not registered (exit 1, nothing changed) and exit 3 when an instance they ran failed;
registry lookup errors name the plugins that failed to load; ``storage["t_x"]`` suggests
``t_x#0``; a relative SQLite path prints absolute.

Most commands run in this process (click's ``CliRunner``), so that a ``memory://``
session outlives one command; the rest run the console script or a fresh interpreter.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import tests.cli.tasks  # noqa: F401 - registers tests.cli.fail_unless_ok
from tests.cli.test_cli import WORKFLOW, ok, run, show_json, statuses, user_error
from tests.plugins.test_install import SOURCES, pip_install
from tests.plugins.test_install import run as run_python
from triggerhooks import TriggerManager
from triggerhooks.cli import cli
from triggerhooks.cli.checks import EXIT_TASK_FAILED, failure_reason
from triggerhooks.core.execution import failure_metadata
from triggerhooks.exceptions import InstanceNotFoundError
from triggerhooks.serialization import dotted_name
from triggerhooks.storages import StorageBackend, open_storage
from triggerhooks.storages.urls import shown_url
from triggerhooks.task import TaskContext, TriggerTask, trigger_tasks
from triggerhooks.testing import holding_runner
from triggerhooks.testing.registries import registered_class

ISOLATED_ENV: dict[str, str | None] = {"COLUMNS": "200", **{name: None for name in (
    "TRIGGERHOOKS_IMPORT", "TRIGGERHOOKS_STORAGE_URL", "TRIGGERHOOKS_MANAGER",
    "TRIGGERHOOKS_TASK_RUNNER", "TRIGGERHOOKS_SQLITE_PATH")}}
"""The command's settings come from its arguments only, whatever the test's environment
holds; lines are not wrapped."""


class Elsewhere(TriggerTask, register=False):
    """A task that only the process which configured the session registered: the commands
    below do not know it (as a user who forgot ``--import``). Fails unless ``a`` says ok."""

    name = "tests.cli.checks.elsewhere"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        if not context.trigger_kwargs.get("a", {}).get("ok"):
            raise ValueError("not ok yet")
        return {"done": True}


def invoke(url: str, *args: str) -> Result:
    """The command line in this process, on the storage at ``url``."""
    return CliRunner().invoke(cli, ["--storage", url, *args], env=ISOLATED_ENV)


def exited(result: Result, code: int) -> Result:
    assert result.exit_code == code, (f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
                                      f"\n{result.exception!r}")
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A storage URL of the parametrized backend (memory lives in this process only)."""
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite3'}"
    prefix = request.getfixturevalue("redis_prefix")
    return f"redis://127.0.0.1:6379/0?prefix={prefix}:cli-checks:"


@pytest.fixture
def session(url: str) -> Iterator[StorageBackend]:
    """A fresh session at ``url``, deleted afterwards."""
    storage = open_storage(url, f"checks-{uuid.uuid4().hex[:12]}")
    yield storage
    storage.clear()


def configure(storage: StorageBackend, workflow: dict[str, Any]) -> TriggerManager:
    manager = TriggerManager(storage)
    manager.update_configuration(workflow)
    return manager


# -- before: every name the session needs is registered -------------------------------------------

ELSEWHERE = {
    "t_echo": {"after": ["a"], "run": "tests.echo"},
    "t_elsewhere": {"after": ["a"], "run": Elsewhere.name},
    # Not reached by firing "a": checked all the same (every configured task is).
    "t_far": {"after": ["later"], "run": "tests.echo", "using": "far-runner"},
}


@pytest.fixture
def needs_elsewhere(session: StorageBackend) -> StorageBackend:
    """``session`` configured with a task and a runner registered only while configuring."""
    with registered_class(trigger_tasks, Elsewhere.name, Elsewhere), holding_runner("far-runner"):
        configure(session, ELSEWHERE)
    return session


def test_fire_refuses_a_session_whose_names_are_not_registered(
        url: str, needs_elsewhere: StorageBackend) -> None:
    uid = needs_elsewhere.uid
    result = exited(invoke(url, "fire", uid, "a"), 1)
    assert result.stderr.splitlines() == [
        f"  t_elsewhere.run: unknown trigger task {Elsewhere.name!r}",
        "  t_far.using: unknown task runner 'far-runner'",
        "hint: register them before the command runs: --import the modules that define them "
        "(or name them in $TRIGGERHOOKS_IMPORT), or install the plugin that registers them",
        f"error: session {uid!r} needs 2 names that are not registered: far-runner, "
        f"{Elsewhere.name}; nothing was fired",
    ]
    assert result.stdout == ""
    assert needs_elsewhere.latest_kwargs == {}
    assert needs_elsewhere.instances == {}

    # Registered (as --import or a plugin would), the same command runs.
    with registered_class(trigger_tasks, Elsewhere.name, Elsewhere), holding_runner("far-runner"):
        result = exited(invoke(url, "fire", uid, "a", "--kwargs", '{"ok": true}'), 0)
    assert f"✓ fired a in session {uid}" in result.stdout
    assert {name: i.status.value for name, i in needs_elsewhere.instances.items()} == {
        "t_echo#0": "finished", "t_elsewhere#0": "finished"}


def test_replay_and_skip_with_cascade_refuse_it_too(
        url: str, needs_elsewhere: StorageBackend) -> None:
    uid = needs_elsewhere.uid
    with registered_class(trigger_tasks, Elsewhere.name, Elsewhere), holding_runner("far-runner"):
        TriggerManager(needs_elsewhere).fire("a")
    assert needs_elsewhere["t_elsewhere#0"].status == "failed"
    before = needs_elsewhere.debug_repr()

    result = exited(invoke(url, "replay", uid, "t_elsewhere#0", "--kwargs",
                           '{"a": {"ok": true}}'), 1)
    assert f"  t_elsewhere.run: unknown trigger task {Elsewhere.name!r}" in result.stderr
    assert result.stderr.endswith("; nothing was replayed\n")
    result = exited(invoke(url, "skip", uid, "t_elsewhere#0", "--cascade"), 1)
    assert result.stderr.endswith("; nothing was skipped\n")
    assert needs_elsewhere.debug_repr() == before

    # A skip without cascade runs nothing, so it needs nothing registered.
    exited(invoke(url, "skip", uid, "t_elsewhere#0"), 0)
    assert needs_elsewhere["t_elsewhere#0"].status == "skipped"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_the_modules_that_register_the_tasks_come_from_import_or_the_environment(
        url: str, session: StorageBackend, tmp_path: Path) -> None:
    """The real console script, as a user runs it: ``load`` with --import, ``fire`` without."""
    workflow = tmp_path / "workflow.json"
    workflow.write_text(json.dumps({"t_echo": WORKFLOW["t_echo"]}))
    uid = session.uid
    ok(run("--import", "tests.cli.tasks", "load", uid, str(workflow), url=url))
    stderr = user_error(run("fire", uid, "a", url=url))
    assert "  t_echo.run: unknown trigger task 'tests.echo'" in stderr
    assert "--import the modules that define them (or name them in $TRIGGERHOOKS_IMPORT)" in stderr
    assert session.latest_kwargs == {}

    out = ok(run("fire", uid, "a", url=url, env={"TRIGGERHOOKS_IMPORT": "tests.cli.tasks"}))
    assert f"✓ fired a in session {uid}" in out
    assert statuses(show_json(uid, url)) == {"t_echo#0": "finished"}


# -- after: a task that failed fails the command -----------------------------------------------------

FAILING = {
    "t_echo": {"after": ["a"], "run": "tests.echo"},
    "t_flaky": {"after": ["a"], "run": "tests.cli.fail_unless_ok"},
    "t_cascade": {"after": ["t_echo"], "run": "tests.boom"},  # fails in a cascade
    "t_thread": {"after": ["a"], "run": "tests.boom", "using": "threading"},
    "t_downstream": {"after": ["t_cascade"], "run": "tests.boom"},
}


def test_a_command_whose_task_failed_exits_3_naming_each_failure(
        url: str, session: StorageBackend) -> None:
    configure(session, FAILING)
    uid = session.uid
    result = exited(invoke(url, "fire", uid, "a"), EXIT_TASK_FAILED)
    assert f"! fired a in session {uid}" in result.stdout
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed: ")]
    assert sorted(failed) == [
        "failed: t_cascade#0: ValueError: boom",
        "failed: t_flaky#0: ValueError: not ok yet",
        "failed: t_thread#0: ValueError: boom",
    ]
    assert result.stderr.splitlines()[-1] == (
        f"error: 3 tasks failed (the change is stored: replay or skip them once fixed; "
        f"`triggerhooks show {uid}` shows the session)")

    # A replay that fails again fails the command; one that works does not.
    result = exited(invoke(url, "replay", uid, "t_flaky#0"), EXIT_TASK_FAILED)
    assert "failed: t_flaky#1: ValueError: not ok yet" in result.stderr
    assert "t_cascade#0" not in result.stderr  # failed before this command: not its doing
    result = exited(invoke(url, "replay", uid, "t_flaky#1", "--kwargs", '{"a": {"ok": true}}'), 0)
    assert "✓ replayed t_flaky#1 as t_flaky#2 (finished)" in result.stdout
    assert "failed" not in result.stderr

    # The cascade a skip fires runs a task that fails: the skip fails; without cascade it does not.
    result = exited(invoke(url, "skip", uid, "t_cascade#0", "--cascade"), EXIT_TASK_FAILED)
    assert "! skipped t_cascade#0 and fired its cascade" in result.stdout
    assert "failed: t_downstream#0: ValueError: boom" in result.stderr
    result = exited(invoke(url, "-q", "skip", uid, "t_thread#0"), 0)
    assert result.stdout == "✓ skipped t_thread#0\n"


def test_work_handed_to_a_runner_elsewhere_is_named_and_exits_0(
        url: str, session: StorageBackend) -> None:
    with holding_runner("elsewhere") as held:
        configure(session, {"t_held": {"after": ["a"], "run": "tests.boom", "using": "elsewhere"},
                            "t_here": {"after": ["a"], "run": "tests.echo"}})
        result = exited(invoke(url, "-q", "fire", session.uid, "a"), 0)
        assert held.names() == ["t_held#0"]
        held.drop()
    assert result.stdout.splitlines() == [
        f"✓ fired a in session {session.uid}",
        "→ handed to runner elsewhere: t_held#0 (this command cannot know how it ends)",
    ]
    assert session["t_held#0"].status == "scheduled"


def test_a_failure_is_one_line_with_the_exception_type_and_message() -> None:
    class OrderError(Exception):
        pass

    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise OrderError("order 7 has\nno address") from inner
    except OrderError as exc:
        metadata = failure_metadata(exc)
    kind = dotted_name(OrderError)
    assert failure_reason(metadata) == f"{kind}: order 7 has no address"
    assert failure_reason({"exceptionType": "ValueError", "exceptionInfo": "ValueError\n"}) == (
        "ValueError")
    long = "x" * 1000
    assert len(failure_reason({"exceptionType": "E", "exceptionInfo": f"E: {long}"})) == 303


# -- lookups that miss name the plugins that failed to load ---------------------------------------------

@pytest.fixture(scope="session")
def broken_plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``triggerhooks-broken`` installed for real: three entry points that fail to load."""
    return pip_install(SOURCES["broken"], tmp_path_factory.mktemp("site-broken") / "site")


LOOKUPS = """
import json, sys, uuid
from click.testing import CliRunner
import tests.tasks
from triggerhooks import ConfigurationError, MemoryStorageBackend, TriggerManager, open_storage
from triggerhooks import storage_backends, task_runners, trigger_managers
from triggerhooks.cli import cli
from triggerhooks.testing import holding_runner

url = sys.argv[1]
found = {}

def error(name, call):
    try:
        call()
    except Exception as exc:
        found[name] = str(exc)

error("open_storage", lambda: open_storage("dynamo://table", "s"))
error("runner", lambda: TriggerManager(MemoryStorageBackend("s"), task_runner="celery"))
error("runners.get", lambda: task_runners.get("celery"))
error("managers.get", lambda: trigger_managers.get("queued", MemoryStorageBackend("s")))
error("storages.get", lambda: storage_backends.get("dynamo", "s"))
manager = TriggerManager(MemoryStorageBackend("s"))
error("using", lambda: manager.update_configuration(
    {"t": {"after": ["a"], "run": "tests.echo", "using": "celery"}}))
error("run", lambda: manager.update_configuration({"t": {"after": ["a"], "run": "shop.charge"}}))

session = open_storage(url, "broken-" + uuid.uuid4().hex)
with holding_runner("celery"):
    TriggerManager(session).update_configuration(
        {"t": {"after": ["a"], "run": "tests.echo", "using": "celery"}})
env = {"TRIGGERHOOKS_IMPORT": None, "TRIGGERHOOKS_STORAGE_URL": None}
for name, args in {"cli fire": ["--storage", url, "fire", session.uid, "a"],
                   "cli storage": ["--storage", "dynamo://table", "show", "s"],
                   "cli manager": ["--storage", url, "--manager", "queued", "fire", "s", "a"]}.items():
    result = CliRunner().invoke(cli, args, env=env)
    found[name] = [result.exit_code, result.stderr]
found["left"] = [name for name, _ in session.latest_kwargs.items()]
session.clear()
print(json.dumps(found))
"""

FAILED = ("plugins that failed to load: broken-hook: triggerhooks-broken 0.1.0 (entry point "
          "broken-hook = triggerhooks_broken.misspelled): InvalidPluginError: ")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["memory", "sqlite", "redis"])
def test_every_lookup_that_misses_names_the_plugins_that_failed_to_load(
        url: str, broken_plugins: Path) -> None:
    done = run_python(["-c", LOOKUPS, url], broken_plugins)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    for name in ("open_storage", "runner", "runners.get", "managers.get", "storages.get",
                 "using", "run"):
        assert FAILED in found[name], (name, found[name])
        assert "broken-import: triggerhooks-broken 0.1.0" in found[name], name
    assert found["open_storage"].startswith(
        "unknown storage URL scheme 'dynamo'; known: 'memory', ")
    assert "t.using: unknown task runner 'celery'; known: " in found["using"]
    assert "t.run: unknown trigger task 'shop.charge'; known: " in found["run"]

    code, stderr = found["cli fire"]
    assert code == 1
    assert "  t.using: unknown task runner 'celery'\n" in stderr
    assert f"hint: {FAILED}" in stderr
    assert found["left"] == []  # nothing was fired
    for name in ("cli storage", "cli manager"):
        code, stderr = found[name]
        assert code == 1 and FAILED in stderr.splitlines()[-1], (name, stderr)


# -- storage["t_x"] ------------------------------------------------------------------------------------------

def test_a_task_name_where_an_instance_name_belongs_suggests_its_instances(
        storage: StorageBackend) -> None:
    manager = configure(storage, {"t_x": {"after": ["a"], "run": "tests.echo"},
                                  "t_page": {"andEvery": "page", "run": "tests.echo"}})
    uid = storage.uid
    with pytest.raises(InstanceNotFoundError) as caught:
        storage["t_x"]
    assert str(caught.value) == f"session {uid!r} has no instance 't_x'; task 't_x' has no instance yet"

    manager.fire("a")
    with pytest.raises(InstanceNotFoundError) as caught:
        storage["t_x"]
    assert str(caught.value) == f"session {uid!r} has no instance 't_x'; did you mean 't_x#0'?"

    manager.fire("page")
    manager.fire("page")
    with pytest.raises(InstanceNotFoundError, match=r"did you mean 't_page#0' or 't_page#1'\?$"):
        storage["t_page"]
    manager.fire("page")
    manager.fire("page")
    with pytest.raises(InstanceNotFoundError) as caught:
        storage["t_page"]
    assert str(caught.value).endswith(
        "did you mean one of 't_page#0', 't_page#1', 't_page#2', ... 't_page#3' (4 instances)?")

    # Neither a task nor an instance: nothing to suggest.
    with pytest.raises(InstanceNotFoundError) as caught:
        storage["t_nothing"]
    assert str(caught.value) == f"session {uid!r} has no instance 't_nothing'"
    with pytest.raises(InstanceNotFoundError) as caught:
        storage["t_x#5"]
    assert str(caught.value) == f"session {uid!r} has no instance 't_x#5'"


# -- relative SQLite paths print absolute ---------------------------------------------------------------

def test_a_relative_sqlite_path_prints_absolute(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    state = tmp_path / "data" / "state.sqlite3"
    state.parent.mkdir()
    relative = "sqlite:///data/state.sqlite3"
    assert shown_url(relative) == f"sqlite:///{state}"
    assert shown_url(relative + "?timeout=5") == f"sqlite:///{state}?timeout=5"

    result = exited(invoke(relative, "show", "s"), 1)
    assert result.stderr == f"error: no session 's' in sqlite:///{state}: {state} does not exist\n"
    exited(invoke(relative, "-q", "fire", "s", "a"), 0)
    result = exited(invoke(relative, "show", "s", "--json"), 0)
    assert json.loads(result.stdout)["storage"] == f"sqlite:///{state}"
    assert f"Session s  sqlite:///{state}\n" in exited(invoke(relative, "show", "s"), 0).stdout

    result = exited(invoke("sqlite:///demo.sqlite3", "-q", "demo"), 0)
    assert f"storage: sqlite:///{tmp_path / 'demo.sqlite3'}\n" in result.stdout
    assert f"triggerhooks --storage sqlite:///{tmp_path / 'demo.sqlite3'} show" in result.stdout

    # Two slashes make "data" a host: the error says which file three would have meant.
    result = exited(invoke("sqlite://data/state.sqlite3", "show", "s"), 1)
    assert (f"(expected sqlite:///path/to/file; did you mean sqlite:///data/state.sqlite3, "
            f"the file {state}?)") in result.stderr

