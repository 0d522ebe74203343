"""Commands given odd input say what happened and change only what they say: names that
look like rich markup (``[/]``, ``[red]``) are printed as they are; a fire that fails is not
said to be recorded; a command that names an unknown instance changes nothing; a bad Redis
URL option is the URL's error; ``show`` keeps 80 columns by cutting only the detail;
``graph`` never writes over the file it draws."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

import tests.cli.tasks  # noqa: F401 - registers tests.cli.fail_unless_ok
from triggerhooks import TriggerManager
from triggerhooks.cli import cli
from triggerhooks.storages import open_storage

ENV: dict[str, str | None] = {"COLUMNS": "200", "TRIGGERHOOKS_IMPORT": None,
                              "TRIGGERHOOKS_STORAGE_URL": None}
SESSION = "[/]order[bold]"
TASK = "t_[/]flaky"


def invoke(url: str, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, ["--storage", url, *args], env=ENV)
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    return result


def test_session_trigger_key_and_instance_names_with_markup(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    TriggerManager(open_storage(url, SESSION)).update_configuration({
        "t_echo": {"after": ["[red]a[/red]"], "run": "tests.echo"},
        TASK: {"after": ["a"], "run": "tests.cli.fail_unless_ok"}})

    result = invoke(url, "fire", SESSION, "[red]a[/red]", "--key", "[/]k")
    assert f"fired [red]a[/red] in session {SESSION}" in result.stdout
    result = invoke(url, "fire", SESSION, "[red]a[/red]", "--key", "[/]k")
    assert "key [/]k was fired already" in result.stdout

    TriggerManager(open_storage(url, SESSION)).fire("a")  # t_[/]flaky#0 fails
    result = invoke(url, "replay", SESSION, f"{TASK}#0", code=3)
    assert f"replayed {TASK}#0 as {TASK}#1 (failed)" in result.stdout
    result = invoke(url, "skip", SESSION, f"{TASK}#1")
    assert f"skipped {TASK}#1" in result.stdout


def test_a_fire_that_fails_does_not_say_the_trigger_is_recorded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    result = CliRunner().invoke(cli, ["--storage", url, "fire", "lonely", "a", "--kwargs",
                                      '{"score": NaN}'], env=ENV)
    assert result.exit_code == 1
    assert "is recorded" not in result.stderr
    assert result.stderr.startswith("error: kwargs of trigger 'a' cannot be stored as JSON")
    assert open_storage(url, "lonely").latest_kwargs == {}


def test_resolve_logs_with_an_unknown_instance_resolves_none(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    manager = TriggerManager(open_storage(url, "s"))
    manager.update_configuration({"t_warn": {"after": ["a"], "run": "tests.cli.warns"}})
    manager.fire("a")
    result = CliRunner().invoke(cli, ["--storage", url, "resolve-logs", "s", "t_warn#0",
                                      "t_nope#0"], env=ENV)
    assert result.exit_code == 1
    assert result.stderr == "error: session 's' has no instance 't_nope#0'\n"
    assert not open_storage(url, "s")["t_warn#0"].logs_resolved


def test_a_redis_url_with_an_option_no_connection_takes_is_an_invalid_url() -> None:
    url = "redis://:pw@127.0.0.1:6379/0?bogus_option=1"
    result = CliRunner().invoke(cli, ["--storage", url, "show", "s"], env=ENV)
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()  # redis-py's words follow the URL
    assert line.startswith("error: invalid Redis URL 'redis://:***@127.0.0.1:6379/0?bogus_option=1': ")
    assert "'bogus_option'" in line


def test_in_80_columns_only_the_detail_of_an_instance_is_cut(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    name = "t_importBrowserMetadata"  # 25 characters with '#0', as in the demo
    manager = TriggerManager(open_storage(url, "s"))
    manager.update_configuration({name: {"after": ["a"], "run": "tests.echo"},
                                  "t_warns": {"after": ["a"], "run": "tests.cli.warns"}})
    manager.fire("a", {"detail": "y" * 100})  # t_import...#0's result is long
    result = CliRunner().invoke(cli, ["--storage", url, "show", "s"],
                                env={**ENV, "COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    instances = result.stdout.split("\nInstances")[1]
    rows = [line.split()[:3] for line in instances.splitlines() if line.startswith("t_")]
    assert rows == [[f"{name}#0", "finished", "-"], ["t_warns#0", "finished", "WARNING"]]
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


def test_graph_never_writes_over_the_workflow_file_it_draws(tmp_path: Path) -> None:
    workflow = tmp_path / "shop.yaml"
    text = "t_charge:\n  after: [orderPlaced]\n  run: tests.echo\n"
    workflow.write_text(text)
    result = CliRunner().invoke(cli, ["graph", str(workflow), "-o", str(workflow)], env=ENV)
    assert result.exit_code == 2
    assert "is the workflow file being drawn" in result.stderr
    assert workflow.read_text() == text


def test_graph_refuses_an_output_suffix_it_cannot_draw_in(tmp_path: Path) -> None:
    workflow = tmp_path / "shop.yaml"
    workflow.write_text("t_charge:\n  after: [orderPlaced]\n  run: tests.echo\n")
    picture = tmp_path / "shop.jpg"
    result = CliRunner().invoke(cli, ["graph", str(workflow), "-o", str(picture)], env=ENV)
    assert result.exit_code == 2
    assert "'.jpg' says no format triggerhooks draws in" in result.stderr
    assert not picture.exists()
    named = CliRunner().invoke(cli, ["graph", str(workflow), "-o", str(picture), "-f", "mermaid"],
                               env=ENV)
    assert named.exit_code == 0, named.output
    assert "flowchart LR" in picture.read_text()
