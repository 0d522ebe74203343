"""``triggerhooks why`` and the "waiting for" column of ``show``, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from tests.cli.test_cli import ok, run, user_error
from tests.helpers import ROOT

pytestmark = pytest.mark.slow  # the console script runs in a subprocess


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'th.sqlite3'}"
    return f"redis://127.0.0.1:6379/0?prefix={redis_prefix}-why-{uuid.uuid4().hex[:8]}"


def _session(url: str) -> None:
    """A session made by another process: fetch failed, so score waits, so report waits."""
    script = textwrap.dedent(f"""
        import tests.tasks
        from triggerhooks import TriggerManager, open_storage
        manager = TriggerManager(open_storage({url!r}, "s-why"))
        manager.update_configuration({{
            "fetch": {{"after": ["start"], "run": "tests.boom"}},
            "score": {{"after": ["fetch", "answers"], "run": "tests.echo"}},
            "report": {{"after": ["score", "consent"], "run": "tests.echo"}},
        }})
        manager.fire("start")
        manager.fire("consent")
    """)
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60)


def test_why_prints_the_tree_down_to_the_root_causes(url: str) -> None:
    _session(url)
    out = ok(run("why", "s-why", "report", url=url))
    lines = out.splitlines()
    assert lines[0] == "report — waiting: waits for 1 of 2 after trigger(s): 'score'"
    assert any("✗ after 'score' (a task) not finished: score — waiting" in line for line in lines)
    assert any("fetch#0 failed: failed with ValueError: replay or skip it" in line
               for line in lines)
    assert any("✓ after 'consent' fired (first at " in line for line in lines)
    causes = out.split("root causes:")[1].split()
    assert "fetch#0:" in causes and "'answers'" in causes

    data = json.loads(ok(run("why", "s-why", "report#0", "--json", url=url)))
    assert data["instance"] == "report#0" and data["state"] == "waiting"
    assert data["root_causes"] == ["fetch#0: failed with ValueError: replay or skip it",
                                   "trigger 'answers' never fired"]

    assert "no task named 'nope'" in user_error(run("why", "s-why", "nope", url=url))


def test_show_says_what_each_task_waits_for_and_keeps_the_status_in_80_columns(url: str) -> None:
    _session(url)
    out = ok(run("show", "s-why", url=url, env={"COLUMNS": "80"}))
    assert "waiting for" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert rows["score"].split()[-3:] == ["answers", "none", "yet"]  # waiting for fetch, answers
    assert rows["report"].split()[-3:] == ["score", "1", "unstarted"]
    for line in out.splitlines():
        assert len(line) <= 80
        if line.startswith("fetch#0"):
            assert " failed " in line
