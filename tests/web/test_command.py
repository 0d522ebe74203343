"""``triggerhooks web``: its options, what it serves and what it prints (never a password);
and a real server in a process of its own, whose output holds no secret either."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

import triggerhooks.cli.web as web
from triggerhooks.cli import cli
from triggerhooks.testing.waiting import wait_for
from triggerhooks.web import WebSettings

SECRET = "s3cr3t-Pa55"
TOKEN = "cli-token-0123456789abc"


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[WebSettings, int]]:
    """What ``serve`` was called with, instead of serving."""
    calls: list[tuple[WebSettings, int]] = []
    monkeypatch.setattr(web, "serve", lambda settings, port, **options: calls.append(
        (settings, port)))
    return calls


def test_the_command_serves_the_global_storage_read_only_by_default(
        served: list[tuple[WebSettings, int]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIGGERHOOKS_WEB_TOKEN", raising=False)
    url = f"redis://:{SECRET}@127.0.0.1:6379/0"
    result = CliRunner().invoke(cli, ["--storage", url, "web"])
    assert result.exit_code == 0, result.output
    [(settings, port)] = served
    assert (settings.host, port, settings.read_only) == ("127.0.0.1", 8000, True)
    assert settings.storage_url == url
    assert "http://127.0.0.1:8000/" in result.output and "read-only" in result.output
    assert "redis://:***@127.0.0.1:6379/0" in result.output and SECRET not in result.output
    assert settings.open_session("s").uid == "s"


def test_the_token_comes_from_the_option_or_the_environment(
        served: list[tuple[WebSettings, int]], monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(cli, ["--storage", "memory://", "web", "--token", TOKEN,
                                      "--host", "::1", "--port", "9123"])
    assert result.exit_code == 0, result.output
    assert "http://[::1]:9123/" in result.output and "actions need the token" in result.output
    assert TOKEN not in result.output
    monkeypatch.setenv("TRIGGERHOOKS_WEB_TOKEN", TOKEN)
    assert CliRunner().invoke(cli, ["--storage", "memory://", "web"]).exit_code == 0
    assert [(s.token, s.host, port) for s, port in served] == [(TOKEN, "::1", 9123),
                                                               (TOKEN, "127.0.0.1", 8000)]


def test_a_short_token_is_a_misused_option(served: list[tuple[WebSettings, int]]) -> None:
    result = CliRunner().invoke(cli, ["--storage", "memory://", "web", "--token", "short"])
    assert result.exit_code == 2 and "at least 16 characters" in result.output
    assert served == []


def test_without_the_web_extra_the_command_says_what_to_install(
        served: list[tuple[WebSettings, int]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web, "MISSING", "starlette")
    result = CliRunner().invoke(cli, ["web"])
    assert result.exit_code == 1
    assert "pip install 'triggerhooks[web]'" in result.output and "starlette" in result.output
    assert served == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow  # a server process
def test_a_real_server_logs_no_secret(tmp_path: Path) -> None:
    port = _free_port()
    url = f"redis://:{SECRET}@127.0.0.1:1/0"
    env = {**os.environ, "TRIGGERHOOKS_WEB_TOKEN": TOKEN}
    process = subprocess.Popen(
        [sys.executable, "-m", "triggerhooks", "--storage", url, "--log-level", "debug",
         "web", "--port", str(port), "--access-log"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"

        def answers() -> httpx.Response | None:
            try:
                return httpx.get(f"{base}/sessions", timeout=5)
            except httpx.TransportError:
                return None

        response = wait_for(answers, 30, "the server to answer")
        assert response.status_code == 503 and SECRET not in response.text
        replay = httpx.post(f"{base}/session/replay", data={"uid": "s", "instance": "t#0"},
                            headers={"authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert replay.status_code == 503 and SECRET not in replay.text
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert f"on http://127.0.0.1:{port}/" in output and "redis://:***@127.0.0.1:1/0" in output
    assert "GET /sessions" in output and "503" in output  # the access log
    assert SECRET not in output and TOKEN not in output



@pytest.mark.slow  # a server process
def test_an_address_in_use_is_one_error_line_and_status_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "triggerhooks", "--storage", "memory://", "web", "--port",
             str(port)], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1, result.stderr  # 3 would say a task failed
    assert result.stderr.splitlines()[-1] == (
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use")
    assert "Traceback" not in result.stderr and "ERROR:" not in result.stderr
