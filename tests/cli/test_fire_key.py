"""``triggerhooks fire --key``: a command retried after a timeout stores its firing once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli import WORKFLOW, ok, run, show_json, user_error

pytestmark = pytest.mark.slow  # every test starts the console script in a subprocess


def test_a_keyed_fire_run_twice_stores_one_firing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    workflow = tmp_path / "workflow.json"
    workflow.write_text(json.dumps({"t_page": {"after": [], "andEvery": "page",
                                               "run": "tests.echo"}}))
    ok(run("--import", "tests.cli.tasks", "load", "s1", str(workflow), url=url))
    first = ok(run("--import", "tests.cli.tasks", "fire", "s1", "page", "--kwargs", '{"n": 1}',
                   "--key", "page-1", url=url))
    assert "fired page" in first
    again = ok(run("--import", "tests.cli.tasks", "fire", "s1", "page", "--kwargs", '{"n": 1}',
                   "--key", "page-1", url=url))
    assert "key page-1 was fired already" in again and "nothing changed" in again
    instances = show_json("s1", url)["instances"]
    assert [(i["name"], i["status"]) for i in instances] == [("t_page#0", "finished")]
    error = user_error(run("--import", "tests.cli.tasks", "fire", "s1", "page", "--kwargs",
                           '{"n": 2}', "--key", "page-1", url=url))
    assert "fire key 'page-1' was first used with other kwargs" in error
    assert [i["name"] for i in show_json("s1", url)["instances"]] == ["t_page#0"]


def test_stuck_and_recover_on_a_healthy_session_report_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    workflow = tmp_path / "workflow.json"
    workflow.write_text(json.dumps({"t_echo": WORKFLOW["t_echo"]}))
    ok(run("--import", "tests.cli.tasks", "load", "s1", str(workflow), url=url))
    ok(run("--import", "tests.cli.tasks", "fire", "s1", "a", url=url))
    assert "nothing stuck in 1 session" in ok(run("stuck", "s1", url=url))
    assert json.loads(ok(run("stuck", "--all", "--json", url=url))) == {"s1": []}
    assert "nothing to recover in 1 session" in ok(run("recover", "--all", url=url))
    assert "no session 'nope'" in user_error(run("recover", "nope", url=url))
    assert "name a SESSION or pass --all" in user_error(run("stuck", url=url), code=2)
