"""The ``triggerhooks`` command, driven as a user would: the real console script in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, needs_dot
from triggerhooks.config import workflow_json_schema

SCRIPT = Path(sys.executable).with_name("triggerhooks")
pytestmark = pytest.mark.slow  # every test starts the console script in a subprocess

WORKFLOW = {
    "t_echo": {"after": ["a"], "run": "tests.echo"},
    "t_flaky": {"after": ["a"], "run": "tests.cli.fail_unless_ok"},
    "t_next": {"after": ["t_flaky"], "run": "tests.echo"},
}


def run(*args: str, url: str | None = None, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the console script; ``url`` becomes $TRIGGERHOOKS_STORAGE_URL."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGERHOOKS_")}
    environ.update({"COLUMNS": "200", "PYTHONPATH": str(ROOT), "NO_COLOR": "1"})
    if url is not None:
        environ["TRIGGERHOOKS_STORAGE_URL"] = url
    environ.update(env or {})
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=environ,
                          cwd=cwd or ROOT, timeout=120, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def user_error(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """A user mistake: the given exit status, a short message, no traceback."""
    assert result.returncode == code, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr + result.stdout
    return result.stderr


def task_failed(result: subprocess.CompletedProcess[str]) -> str:
    """The change was stored but a task it ran failed: exit status 3, no traceback."""
    assert result.returncode == 3, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr + result.stdout
    return result.stdout


def show_json(session: str, url: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ok(run("show", session, "--json", url=url)))
    return data


def statuses(data: dict[str, Any]) -> dict[str, str]:
    return {i["name"]: i["status"] for i in data["instances"]}


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.sqlite3'}"


@pytest.fixture
def workflow_file(tmp_path: Path) -> Path:
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(WORKFLOW, indent=2))
    return path


def test_load_fire_show_replay_across_processes(url: str, workflow_file: Path) -> None:
    imports = ("--import", "tests.cli.tasks")
    out = ok(run(*imports, "load", "s1", str(workflow_file), url=url))
    assert "loaded 3 tasks" in out

    out = task_failed(run(*imports, "fire", "s1", "a", "--kwargs", '{"x": 1}', url=url))
    assert "t_echo#0 finished" in out
    assert "t_flaky#0 failed: ValueError: not ok yet" in out
    data = show_json("s1", url)
    assert statuses(data) == {"t_echo#0": "finished", "t_flaky#0": "failed"}
    echo = next(i for i in data["instances"] if i["name"] == "t_echo#0")
    assert echo["metadata"]["result"] == {"received": {"a": {"x": 1}}}
    assert data["finalized"] is False

    table = ok(run("show", "s1", url=url))
    assert "Session s1" in table
    assert "t_flaky#0" in table and "ValueError: not ok yet" in table
    assert "tests.cli.fail_unless_ok" in table

    out = ok(run(*imports, "replay", "s1", "t_flaky#0", "--kwargs", '{"a": {"ok": true}}',
                 url=url))
    assert "replayed t_flaky#0 as t_flaky#1 (finished)" in out
    data = show_json("s1", url)
    assert statuses(data) == {"t_echo#0": "finished", "t_flaky#0": "replayed",
                              "t_flaky#1": "finished", "t_next#0": "finished"}
    copy = next(i for i in data["instances"] if i["name"] == "t_flaky#1")
    assert copy["metadata"]["parent"] == "t_flaky#0"
    assert data["finalized"] is True


def test_replay_with_merge_keeps_the_other_triggers(url: str, tmp_path: Path) -> None:
    imports = ("--import", "tests.cli.tasks")
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"t": {"after": ["order", "a"], "run": "tests.cli.needs_the_order"}}))
    ok(run(*imports, "load", "s", str(path), url=url))
    ok(run(*imports, "fire", "s", "order", "--kwargs", '{"id": 7}', url=url))
    task_failed(run(*imports, "fire", "s", "a", url=url))
    out = ok(run(*imports, "replay", "s", "t#0", "--kwargs", '{"a": {"ok": true}}', "--merge",
                 url=url))
    assert "replayed t#0 as t#1 (finished)" in out
    copy = next(i for i in show_json("s", url)["instances"] if i["name"] == "t#1")
    assert copy["kwargs"] == {"order": {"id": 7}, "a": {"ok": True}}
    assert copy["metadata"]["result"] == {"order": 7}
    assert "--merge" in user_error(run(*imports, "replay", "s", "t#0", "--merge", url=url), code=2)


def test_skip_with_cascade(url: str, workflow_file: Path) -> None:
    imports = ("--import", "tests.cli.tasks")
    ok(run(*imports, "load", "s2", str(workflow_file), url=url))
    task_failed(run(*imports, "fire", "s2", "a", url=url))
    out = ok(run(*imports, "skip", "s2", "t_flaky#0", "--cascade", "--result", '{"v": 7}', url=url))
    assert "skipped t_flaky#0 and fired its cascade" in out
    data = show_json("s2", url)
    assert statuses(data)["t_flaky#0"] == "skipped"
    following = next(i for i in data["instances"] if i["name"] == "t_next#0")
    assert following["metadata"]["result"] == {"received": {"t_flaky": {"v": 7}}}

    user_error(run(*imports, "skip", "s2", "t_echo#0", "--result", "{}", url=url), code=2)


def test_show_a_session_made_by_another_process(url: str) -> None:
    script = textwrap.dedent(f"""
        import tests.tasks
        from triggerhooks import TriggerManager, open_storage
        manager = TriggerManager(open_storage({url!r}, "made elsewhere"))
        manager.update_configuration({{"t": {{"after": ["x"], "run": "tests.boom"}}}})
        manager.fire("x", {{"n": 1}})
    """)
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60)
    data = show_json("made elsewhere", url)
    assert statuses(data) == {"t#0": "failed"}
    [instance] = data["instances"]
    assert instance["metadata"]["exceptionType"] == "ValueError"
    assert instance["lastChange"] == instance["metadata"]["timestamps"]["failed"]
    assert data["triggers"] == {"x": {"n": 1}}
    assert "ValueError: boom" in ok(run("show", "made elsewhere", url=url))


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis storage URL with a key prefix of its own; its keys are deleted afterwards."""
    import redis

    prefix = f"triggerhooks-cli-test-{uuid.uuid4().hex}:"
    yield f"redis://127.0.0.1:6379/0?prefix={prefix}"
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_a_redis_session_made_by_another_process(redis_url: str) -> None:
    script = textwrap.dedent(f"""
        import tests.cli.tasks
        from triggerhooks import TriggerManager, open_storage
        manager = TriggerManager(open_storage({redis_url!r}, "on redis"))
        manager.update_configuration({{"t": {{"after": ["a"], "run": "tests.cli.fail_unless_ok"}}}})
        manager.fire("a")
    """)
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60)
    assert statuses(show_json("on redis", redis_url)) == {"t#0": "failed"}
    ok(run("--import", "tests.cli.tasks", "replay", "on redis", "t#0", "--kwargs",
           '{"a": {"ok": true}}', url=redis_url))
    data = show_json("on redis", redis_url)
    assert statuses(data) == {"t#0": "replayed", "t#1": "finished"}
    assert data["finalized"] is True
    assert "no session 'elsewhere'" in user_error(run("show", "elsewhere", url=redis_url))


def test_resolve_logs(url: str, tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text('[t_a]\nafter = ["x"]\nrun = "tests.cli.warns"\n'
                    '[t_b]\nafter = ["x"]\nrun = "tests.cli.warns"\n')
    imports = ("--import", "tests.cli.tasks")
    ok(run(*imports, "load", "logs", str(path), url=url))
    fired = run(*imports, "fire", "logs", "x", url=url)
    assert "something to look at" in ok(fired) + fired.stderr
    data = show_json("logs", url)
    assert {i["name"]: (i["logLevel"], i["logsResolved"]) for i in data["instances"]} == {
        "t_a#0": ("WARNING", False), "t_b#0": ("WARNING", False)}

    assert "resolved the logs of t_a#0" in ok(run("resolve-logs", "logs", "t_a#0", url=url))
    assert "WARNING (resolved)" in ok(run("show", "logs", url=url))
    out = ok(run("resolve-logs", "logs", "--all", url=url))
    assert "t_b#0" in out and "t_a#0" not in out
    data = show_json("logs", url)
    assert all(i["logsResolved"] for i in data["instances"])
    assert "no instance has unresolved logs" in ok(run("resolve-logs", "logs", "--all", url=url))
    user_error(run("resolve-logs", "logs", url=url), code=2)


def test_validate_lists_every_problem_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("t_a:\n  after: [x]\n  run: tests.echo\n  withParams: {p: 1}\n"
                   "t_b:\n  run: tests.echo\n")
    result = run("validate", str(bad))
    stderr = user_error(result)
    assert f"{bad}:4:16: t_a.withParams.p: Input should be a valid dictionary" in stderr
    assert f"{bad}:5:1: t_b: needs 'after' or 'andEvery'" in stderr
    assert stderr.strip().endswith("error: 2 problems found")

    broken = tmp_path / "broken.json"
    broken.write_text('{"t": {"after": ["x"]')
    assert f"{broken}:1:22: invalid JSON" in user_error(run("validate", str(broken)))
    assert "no such file" in user_error(run("validate", str(tmp_path / "nope.toml")))


def test_validate_good_files_and_strict_registry_checks() -> None:
    example = "examples/questionnaire.yaml"
    assert "examples/questionnaire.yaml: 4 tasks, valid" in ok(run("validate", example))
    stderr = user_error(run("validate", "--strict", example))
    assert "t_importSubject.run: unknown trigger task 'triggerhooks.demo.ImportSubject'" in stderr
    assert "hint: import the modules that define your trigger tasks" in stderr
    ok(run("--import", "triggerhooks.demo", "validate", "--strict", example))


def test_load_places_registry_problems_in_the_file(url: str, tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text('[t]\nafter = ["x"]\nrun = "app.nowhere"\n')
    stderr = user_error(run("load", "s", str(path), url=url))
    assert f"{path}:3: t.run: unknown trigger task 'app.nowhere'" in stderr
    assert "--import MODULE" in stderr
    # Nothing was stored.
    assert "no session 's'" in user_error(run("show", "s", url=url))


def test_graph_of_a_file(tmp_path: Path) -> None:
    mermaid = ok(run("graph", "examples/questionnaire.yaml"))
    assert mermaid.startswith("---\ntitle: questionnaire.yaml\n---\nflowchart LR\n")
    assert '(["firstPageReceived"])' in mermaid
    assert "==>|every|" in mermaid and "-.->|unless|" in mermaid
    dot = ok(run("graph", "examples/questionnaire.yaml", "--format", "dot"))
    assert dot.startswith("digraph workflow {")
    assert 'label="unless", style=dashed' in dot
    out = tmp_path / "w.gv"
    ok(run("graph", "examples/questionnaire.yaml", "-o", str(out)))
    assert out.read_text() == dot


@needs_dot
def test_graph_pictures_of_a_session(url: str, workflow_file: Path, tmp_path: Path) -> None:
    imports = ("--import", "tests.cli.tasks")
    ok(run(*imports, "load", "g", str(workflow_file), url=url))
    task_failed(run(*imports, "fire", "g", "a", url=url))
    mermaid = ok(run("graph", "g", url=url))
    assert "#0 failed" in mermaid and "#0 finished" in mermaid
    assert "classDef failed fill:#fca5a5" in mermaid
    svg = tmp_path / "g.svg"
    ok(run("graph", "g", "-o", str(svg), url=url))
    text = svg.read_text()
    assert "<svg" in text and "t_flaky" in text and "#fca5a5" in text
    png = tmp_path / "g.png"
    ok(run("graph", "g", "-o", str(png), url=url))
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "no session 'missing'" in user_error(run("graph", "missing", url=url))


def test_graph_without_graphviz_says_what_to_do(tmp_path: Path) -> None:
    result = run("graph", "examples/questionnaire.yaml", "-o", str(tmp_path / "w.svg"),
                 env={"PATH": str(Path(sys.executable).parent)})
    assert "Graphviz 'dot' was not found on PATH" in user_error(result)
    assert not (tmp_path / "w.svg").exists()


def test_schema() -> None:
    assert json.loads(ok(run("schema"))) == workflow_json_schema()


def test_plugins() -> None:
    out = ok(run("plugins"))
    assert out.startswith("triggerhooks.builtins (built in)\n    trigger managers: default\n")
    assert "storage backends: memory, " in out and ", sqlite" in out
    data = json.loads(ok(run("plugins", "--json")))
    builtins = next(p for p in data["plugins"] if p["name"] == "triggerhooks.builtins")
    assert {"memory", "redis", "sqlite"} <= set(builtins["registered"]["storage backend"])
    assert data["failed"] == {}


def test_plugins_that_failed_to_load_make_the_exit_status_1(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from triggerhooks.cli import app
    from triggerhooks.plugins import list_plugins

    infos, _ = list_plugins()
    failed = {"broken": "triggerhooks-broken 0.1 (entry point broken = x): ImportError: no"}
    monkeypatch.setattr(app, "list_plugins", lambda: (infos, failed))
    result = CliRunner().invoke(app.cli, ["plugins"])
    assert result.exit_code == 1
    assert result.stdout.endswith("failed to load:\n    broken: triggerhooks-broken 0.1 "
                                  "(entry point broken = x): ImportError: no\n")


def test_demo_then_show_from_another_process(tmp_path: Path) -> None:
    # No storage option at all: the embedded SQLite default, in the working directory.
    result = run("demo", cwd=tmp_path)
    out = ok(result)
    for expected in ("fire questionnaireComplete", "task_completed", "t_importSubject#0 finished",
                     "session_finalized", "questionnaire-demo", "Instances", "t_finalize#0"):
        assert expected in out
    assert "no email address on the first page" in result.stderr
    state = tmp_path / "triggerhooks.sqlite3"
    assert state.exists()
    assert f"storage: sqlite:///{state}\n" in out  # the file, not a bare sqlite://
    assert f"The session is stored in {state}." in out
    assert "triggerhooks show questionnaire-demo" in out

    data = json.loads(ok(run("show", "questionnaire-demo", "--json", cwd=tmp_path)))
    assert data["finalized"] is True
    assert set(statuses(data).values()) == {"finished"}
    assert len(data["instances"]) == 6
    subject = next(i for i in data["instances"] if i["name"] == "t_importSubject#0")
    assert subject["logLevel"] == "WARNING"
    final = next(i for i in data["instances"] if i["name"] == "t_finalize#0")
    assert final["metadata"]["result"] == {"pagesImported": 3, "instancesWithWarnings": 1}

    # Running it again starts afresh; --embedded abandons the browser metadata.
    ok(run("-q", "demo", "--embedded", cwd=tmp_path))
    data = json.loads(ok(run("show", "questionnaire-demo", "--json", cwd=tmp_path)))
    assert statuses(data)["t_importBrowserMetadata#0"] == "abandoned"
    assert len(data["instances"]) == 6


@pytest.mark.parametrize(("args", "message"), [
    (("--storage", "nosuch://x", "show", "s"), "error: unknown storage URL scheme 'nosuch'; known: "),
    (("show", "nobody"), "error: no session 'nobody' in "),
    (("--import", "no_such_module_xyz", "fire", "s", "a"),
     "error: cannot import module 'no_such_module_xyz': ModuleNotFoundError"),
    (("replay", "s", "not-an-instance"), "error: 'not-an-instance' is not a task instance name"),
    (("--manager", "nope", "fire", "s", "a"), "error: unknown trigger manager 'nope'; known: 'default'"),
    (("load", "s", "missing.json"), "missing.json: no such file"),
])
def test_user_errors_are_one_clear_line(url: str, args: tuple[str, ...], message: str) -> None:
    stderr = user_error(run(*args, url=url))
    assert message in stderr
    assert len(stderr.strip().splitlines()) <= 2


def test_bad_json_options_are_usage_errors(url: str) -> None:
    stderr = user_error(run("fire", "s", "a", "--kwargs", "{nope", url=url), code=2)
    assert "Invalid value for --kwargs: not valid JSON" in stderr
    stderr = user_error(run("fire", "s", "a", "--kwargs", "[1]", url=url), code=2)
    assert "must be a JSON object, not list" in stderr


def test_without_a_storage_url_the_sqlite_path_comes_from_the_environment(tmp_path: Path) -> None:
    env = {"TRIGGERHOOKS_SQLITE_PATH": "sessions.sqlite3"}  # relative to the working directory
    state = tmp_path / "sessions.sqlite3"
    stderr = user_error(run("show", "s", cwd=tmp_path, env=env))
    assert f"error: no session 's' in sqlite:///{state}: {state} does not exist" in stderr

    ok(run("fire", "s", "a", "--kwargs", '{"n": 1}', cwd=tmp_path, env=env))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sessions.sqlite3", "sessions.sqlite3-writers"]
    data = json.loads(ok(run("show", "s", "--json", cwd=tmp_path, env=env)))
    assert data["storage"] == f"sqlite:///{state}"
    assert data["triggers"] == {"a": {"n": 1}}
    assert f"Session s  sqlite:///{state}\n" in ok(run("show", "s", cwd=tmp_path, env=env))
    # Without the variable, the default file (which does not exist) is looked at.
    stderr = user_error(run("show", "s", cwd=tmp_path))
    assert f"{tmp_path / 'triggerhooks.sqlite3'} does not exist" in stderr


def test_looking_creates_no_state_file(tmp_path: Path) -> None:
    stderr = user_error(run("show", "s", cwd=tmp_path))
    assert f"{tmp_path / 'triggerhooks.sqlite3'} does not exist" in stderr
    assert list(tmp_path.iterdir()) == []


def test_kwargs_from_a_file_and_a_session_without_tasks(url: str, tmp_path: Path) -> None:
    (tmp_path / "k.json").write_text('{"from": "file"}')
    result = run("fire", "lonely", "a", "--kwargs", f"@{tmp_path / 'k.json'}", url=url)
    ok(result)
    assert "session 'lonely' has no tasks yet" in result.stderr
    assert show_json("lonely", url)["triggers"] == {"a": {"from": "file"}}


def test_traceback_option_shows_the_traceback() -> None:
    result = run("--traceback", "--storage", "nosuch://x", "show", "s")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "UnknownKeyError: unknown storage URL scheme 'nosuch'" in result.stderr


SHOP = """
from triggerhooks import TriggerManager, on, trigger_task, trigger_managers
from triggerhooks.signals import post_fire


@trigger_task(name="shop.ship")
def ship(context):
    with context.get_logger_context() as logger:
        raise ValueError("no address")


@on(post_fire)
def broken(sender, **kwargs):
    raise RuntimeError("receiver broke")


@trigger_managers.register("shop-hooked")
class HookedManager(TriggerManager):
    def _post_fire(self, trigger_name, tasks_scheduled):
        raise KeyError("a bug in a hook")
"""


def test_tracebacks_only_with_the_traceback_option(url: str, tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(SHOP)
    (tmp_path / "w.json").write_text('{"t": {"after": ["paid"], "run": "shop.ship"}}')
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    ok(run("-q", "--import", "shop", "load", "s", str(tmp_path / "w.json"), url=url, env=env))
    quiet = run("-q", "--import", "shop", "fire", "s", "paid", url=url, env=env)
    task_failed(quiet)
    assert "Traceback" not in quiet.stderr
    assert "receiver shop.broken of signal post_fire failed: RuntimeError: receiver" in quiet.stderr
    assert "ValueError: no address" in quiet.stderr  # the task's own log, on one line
    loud = run("-q", "--traceback", "--import", "shop", "fire", "s", "again", url=url, env=env)
    ok(loud)
    assert loud.stderr.count("Traceback (most recent call last)") == 1  # the receiver's

    # an error that is no user mistake: one line, unless --traceback
    args = ("-q", "--import", "shop", "--manager", "shop-hooked", "fire", "s", "more")
    stderr = user_error(run(*args, url=url, env=env))
    assert stderr.strip().splitlines()[-1] == (
        "error: unexpected KeyError: a bug in a hook (--traceback shows where)")
    loud = run("--traceback", *args, url=url, env=env)
    assert loud.returncode == 1 and "Traceback (most recent call last)" in loud.stderr


def test_python_dash_m_and_version() -> None:
    result = subprocess.run([sys.executable, "-m", "triggerhooks", "--version"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.startswith("triggerhooks, version ")
    result = subprocess.run([sys.executable, "-m", "triggerhooks", "plugins"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.startswith("triggerhooks.builtins (built in)\n")
    commands = ok(run("--help"))
    for command in ("validate", "load", "fire", "show", "replay", "skip", "resolve-logs", "graph",
                    "schema", "plugins", "demo"):
        assert f"  {command} " in commands
