"""What the command logs is one line per record, whatever the terminal's width, and a
library's retries do not repeat on standard error what the command's error says once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.test_cli import ROOT, run, task_failed, user_error

pytestmark = pytest.mark.slow  # the console script in a subprocess

SHOP = '''
from triggerhooks import trigger_task


@trigger_task(name="shop.charge")
def charge(context):
    raise ValueError("card " + "4" * 150 + " declined")
'''


def test_a_long_log_record_is_one_line_in_80_columns(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(SHOP)
    (tmp_path / "w.json").write_text('{"t": {"after": ["paid"], "run": "shop.charge"}}')
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "COLUMNS": "80"}
    run("-q", "--import", "shop", "load", "s", str(tmp_path / "w.json"), url=url, env=env)
    result = run("-q", "--import", "shop", "fire", "s", "paid", url=url, env=env)
    task_failed(result)
    [warning] = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert warning == ("WARNING  s: task instance t#0 failed: ValueError: card " + "4" * 150
                       + " declined")
    assert len(result.stderr.splitlines()) == 3  # the warning, `failed: ...`, `error: ...`


def test_an_unreachable_postgresql_server_is_one_error_line() -> None:
    pytest.importorskip("psycopg_pool")
    url = "postgresql://postgres@127.0.0.1:1/test?pool_timeout=1"
    stderr = user_error(run("show", "s", url=url, env={"COLUMNS": "80"}))
    [line] = stderr.splitlines()
    assert line.startswith("error: PostgreSQL at postgresql://postgres@127.0.0.1:1/test "
                           "is unavailable: OperationalError: ")
