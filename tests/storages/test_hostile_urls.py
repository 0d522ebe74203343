"""Storage URLs as a hostile tester writes them: secrets in every form never show (messages,
``repr``, references sent to workers, the command line); options that are not numbers are
refused naming the option.

A ``redis-server`` of the test's own requires a password and listens on a port and a unix
socket, so that every form of URL reaches a server that checks the password.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from tests.helpers import ROOT
from triggerhooks import (
    InvalidSettingError,
    RedisStorageBackend,
    SqliteStorageBackend,
    StorageUnavailableError,
    TriggerhooksError,
    TriggerManager,
    open_storage,
)
from triggerhooks.cli import cli
from triggerhooks.sessions import session_reference
from triggerhooks.storages import STORAGE_URL_ENV, open_reference
from triggerhooks.storages.redis import REDIS_URL_ENV
from triggerhooks.storages.urls import redact_text, redact_url, strip_password, url_secrets
from triggerhooks.testing import wait_for

SECRET = "s3cr#t/pw?x@y"
"""A password with every character that breaks a URL, percent-encoded where it is written."""
ENCODED = "s3cr%23t%2Fpw%3Fx%40y"

# (URL, redacted for messages, stripped for references) for every form a password takes.
FORMS = [
    (f"redis://:{ENCODED}@h:6379/0", "redis://:***@h:6379/0", "redis://h:6379/0"),
    (f"redis://ada:{ENCODED}@h:6379/0?socket_timeout=5",
     "redis://ada:***@h:6379/0?socket_timeout=5", "redis://ada@h:6379/0?socket_timeout=5"),
    (f"redis://h:6379/0?password={ENCODED}&db=2", "redis://h:6379/0?password=***&db=2",
     "redis://h:6379/0?db=2"),
    (f"redis://h/0?Pass%77ord={ENCODED}", "redis://h/0?Pass%77ord=***", "redis://h/0"),
    (f"rediss://ada:{ENCODED}@h:6380/2?ssl_password={ENCODED}",
     "rediss://ada:***@h:6380/2?ssl_password=***", "rediss://ada@h:6380/2"),
    (f"unix://:{ENCODED}@/run/redis.sock?db=0", "unix://:***@/run/redis.sock?db=0",
     "unix:///run/redis.sock?db=0"),
    (f"unix:///run/redis.sock?db=0&password={ENCODED}",
     "unix:///run/redis.sock?db=0&password=***", "unix:///run/redis.sock?db=0"),
]
SHOWN_NEVER = [ENCODED, SECRET, "s3cr", "x@y", "x%40y"]
# Passwords written without escaping: where they end cannot be told, so all before the last
# "@" goes. (URL, the parts of the password that must never show.)
MALFORMED = [
    ("redis://:p9#ss@h:6379/0", ["p9#ss", "ss@"]), ("redis://:p9/ss@h:6379/0", ["p9/ss", "p9"]),
    ("redis://:p9?ss@h:6379/0", ["p9?ss", "ss@"]),
    ("redis://:p4ss#w0rd@h:6379/0?password=s3/cr", ["p4ss", "w0rd", "s3/cr"]),
    ("redis://:p4ss#w0rd", ["p4ss", "w0rd"]), ("host:p4ss@w0rd", ["p4ss"]),
]


@pytest.mark.parametrize(("url", "redacted", "stripped"), FORMS)
def test_every_form_of_password_is_redacted_and_stripped(url: str, redacted: str,
                                                        stripped: str) -> None:
    assert redact_url(url) == redacted
    assert strip_password(url) == stripped
    assert ENCODED in url_secrets(url) and SECRET in url_secrets(url)
    message = redact_text(f"could not connect to {url} with {SECRET}", url)
    assert all(part not in message for part in SHOWN_NEVER)


@pytest.mark.parametrize(("url", "parts"), MALFORMED)
def test_a_password_written_unescaped_never_shows(url: str, parts: list[str]) -> None:
    for shown in (redact_url(url), strip_password(url), redact_text(f"cannot reach {url}", url)):
        assert all(part not in shown for part in parts), shown
    if "@" in url:
        with pytest.raises(InvalidSettingError, match="percent-encode") as caught:
            RedisStorageBackend("s", url)
        assert all(part not in str(caught.value) for part in parts)


@pytest.mark.parametrize(("url", "redacted", "stripped"), FORMS)
def test_a_storage_shows_no_password_and_references_none(url: str, redacted: str,
                                                         stripped: str) -> None:
    storage = open_storage(url, "s")
    reference = storage.reference()
    assert repr(storage) == f"<RedisStorageBackend uid='s' url={redacted!r}>"
    assert (reference["url"], reference["secretWithheld"]) == (stripped, True)
    assert all(part not in json.dumps(reference) for part in SHOWN_NEVER)


def test_a_url_without_secrets_is_left_as_it_is() -> None:
    for url in ("redis://127.0.0.1:6379/0", "unix:///tmp/redis.sock?db=2", "sqlite:///x.db",
                "sqlite://", "memory://", "redis://[::1]:6379/0", "rediss://ada@h:6380/2"):
        assert redact_url(url) == strip_password(url) == url
        assert url_secrets(url) == []
        assert "secretWithheld" not in (RedisStorageBackend("s", url).reference()
                                        if url.startswith(("redis", "unix")) else {})


# -- a server that checks the password -----------------------------------------------------------

class PasswordServer:
    """A redis-server of the test's own that requires ``SECRET``, on a port and a unix socket."""

    def __init__(self, directory: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.socket = directory / "redis.sock"
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--unixsocket", str(self.socket), "--save", "", "--appendonly", "no",
             "--requirepass", SECRET, "--dir", str(directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, password=SECRET, socket_connect_timeout=1)
        try:
            wait_for(lambda: self._answers(client), timeout=20, message="redis-server to start")
        finally:
            client.close()

    @staticmethod
    def _answers(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def urls(self) -> list[str]:
        tcp = f"127.0.0.1:{self.port}"
        return [f"redis://:{ENCODED}@{tcp}/0", f"redis://default:{ENCODED}@{tcp}/1",
                f"redis://{tcp}/2?password={ENCODED}",
                f"unix://:{ENCODED}@{self.socket}?db=3",
                f"unix://{self.socket}?db=4&password={ENCODED}"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PasswordServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    made = PasswordServer(tmp_path_factory.mktemp("redis"))
    yield made
    made.stop()


WORKER = """
import json, os, sys
from triggerhooks.sessions import open_session
import tests.tasks  # the tasks a worker runs
results = []
for reference, env_url in json.loads(sys.stdin.read()):
    os.environ.pop("TRIGGERHOOKS_REDIS_URL", None)
    if env_url:
        os.environ["TRIGGERHOOKS_REDIS_URL"] = env_url
    try:
        manager = open_session(reference)
        manager.fire("fromWorker", {"worker": True})
        results.append(sorted(manager.storage.latest_kwargs))
    except Exception as exc:
        results.append(f"{type(exc).__name__}: {exc}")
print(json.dumps(results))
"""


@pytest.mark.slow
def test_workers_complete_references_from_their_own_settings(server: PasswordServer) -> None:
    """The reference a runner sends (a Celery message carries it) holds no password; a worker
    reaches the server with the URL of its own settings, and without one says what to set."""
    # First without a URL of the worker's own (it has connected nowhere yet), then with one.
    without: list[Any] = []
    with_url: list[Any] = []
    for url in server.urls():
        storage = RedisStorageBackend("ref", url, prefix="th-hostile-urls")
        manager = TriggerManager(storage)
        manager.fire("fromSender")
        reference = session_reference(manager)
        assert all(part not in json.dumps(reference) for part in SHOWN_NEVER)
        without.append([reference, None])
        with_url.append([reference, url])
    pairs = without + with_url
    done = subprocess.run([sys.executable, "-c", WORKER], input=json.dumps(pairs), cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    count = len(server.urls())
    assert results[count:] == [["fromSender", "fromWorker"]] * count
    for refused in results[:count]:
        assert refused.startswith("StorageUnavailableError: ")
        assert "leaves its password out" in refused and "TRIGGERHOOKS_REDIS_URL" in refused
        assert SECRET not in refused and ENCODED not in refused
    for url in server.urls():
        RedisStorageBackend("ref", url, prefix="th-hostile-urls").clear()


def test_a_wrong_or_missing_password_is_an_error_without_it(server: PasswordServer) -> None:
    tcp = f"127.0.0.1:{server.port}"
    for url in (f"redis://:wr0ng-{ENCODED}@{tcp}/0", f"redis://{tcp}/0?password=wr0ng{ENCODED}",
                f"redis://{tcp}/0"):
        with pytest.raises(StorageUnavailableError) as caught:
            TriggerManager(RedisStorageBackend("s", url)).fire("a")
        message = str(caught.value)
        assert message.startswith(f"Redis at {redact_url(url)} is unavailable: ")
        assert "wr0ng" not in message and ENCODED not in message and SECRET not in message


def test_a_bad_option_beside_a_password_is_refused_without_it() -> None:
    storage = open_storage(f"redis://127.0.0.1:6379/0?password={ENCODED}&socket_timeout=soon", "s")
    with pytest.raises(InvalidSettingError) as caught:
        storage.latest_kwargs  # noqa: B018 - connects
    assert "socket_timeout" in str(caught.value) or "invalid Redis URL" in str(caught.value)
    assert ENCODED not in str(caught.value) and SECRET not in str(caught.value)


@pytest.mark.parametrize("database", ["abc", "0x1", "1/2", "%31a"])
def test_a_database_that_is_not_a_number_is_refused_not_taken_for_0(database: str) -> None:
    storage = open_storage(f"redis://127.0.0.1:6379/{database}", "s")
    with pytest.raises(InvalidSettingError, match="the database after the host is a number"):
        storage.latest_kwargs  # noqa: B018 - connects


@pytest.mark.parametrize("url", [f"redis://:{ENCODED}@127.0.0.1:{{port}}/0",
                                 f"redis://127.0.0.1:{{port}}/0?password={ENCODED}",
                                 f"redis://127.0.0.1:{{port}}/0?password={ENCODED}&ttl=never"])
def test_the_command_line_never_prints_a_password(url: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens there
    result = CliRunner().invoke(cli, ["--storage", url.format(port=port), "fire", "s", "a"])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "Traceback" not in result.output
    assert ENCODED not in result.output and SECRET not in result.output


# -- options that are not numbers ------------------------------------------------------------------

@pytest.mark.parametrize("ttl", ["nan", "inf", "-inf", "abc", "0", "-1", "1e12", ""])
def test_a_ttl_that_is_no_number_of_seconds_is_refused_naming_ttl(ttl: str) -> None:
    with pytest.raises(InvalidSettingError) as caught:
        open_storage(f"redis://:{ENCODED}@127.0.0.1:6379/0?ttl={ttl}", "s")
    message = str(caught.value)
    assert message.startswith("ttl must be a positive number of seconds")
    assert f"not {ttl!r} (?ttl= in URL 'redis://:***@127.0.0.1:6379/0?ttl={ttl}')" in message
    assert ENCODED not in message
    for value in (math.nan, math.inf, 0, -5, True, "x"):
        with pytest.raises(InvalidSettingError, match="ttl must be"):
            RedisStorageBackend("s", ttl=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("option", ["timeout=nan", "timeout=inf", "timeout=abc", "timeout=-1",
                                    "synchronous=sometimes", "nonsense=1", "timeout"])
def test_sqlite_options_that_make_no_sense_are_refused(option: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidSettingError) as caught:
        open_storage(f"sqlite:///{tmp_path}/x.sqlite3?{option}", "s")
    assert option.partition("=")[0] in str(caught.value) or "query" in str(caught.value)
    with pytest.raises(InvalidSettingError, match="timeout must be"):
        SqliteStorageBackend("s", tmp_path / "y.sqlite3", timeout=math.nan)
    assert not list(tmp_path.iterdir())


def test_settings_errors_are_ours_and_value_errors() -> None:
    attempts: list[Callable[[], object]] = [lambda: open_storage("redis://h/0?ttl=nan", "s"),
                    lambda: RedisStorageBackend("s", prefix="{x}"),
                    lambda: RedisStorageBackend("s", prefix="a\udc80"),
                    lambda: SqliteStorageBackend("s", "a\x00b"),
                    lambda: open_reference({"backend": "redis", "uid": "s",
                                            "url": "redis://127.0.0.1:1/0",
                                            "secretWithheld": True})]
    for attempt in attempts:
        with pytest.raises(TriggerhooksError):
            attempt()
    assert issubclass(InvalidSettingError, ValueError)


def test_a_worker_finds_the_password_in_its_storage_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REDIS_URL_ENV, raising=False)
    monkeypatch.setenv(STORAGE_URL_ENV, f"redis://127.0.0.1:6379/7?password={ENCODED}&prefix=p")
    reference = RedisStorageBackend("s", f"redis://127.0.0.1:6379/7?password={ENCODED}").reference()
    assert reference["url"] == "redis://127.0.0.1:6379/7"
    rebuilt = open_reference(reference)
    assert isinstance(rebuilt, RedisStorageBackend)
    assert rebuilt.url == f"redis://127.0.0.1:6379/7?password={ENCODED}"
