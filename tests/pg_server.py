"""A PostgreSQL server of a test's own: a cluster made with ``initdb`` in a directory of its
own, run with ``pg_ctl`` on a free port (its socket in that directory too), stopped
(``immediate``: as if killed) and started again on the same files, removed at the end.

``initdb`` refuses to run as root: as root, the cluster belongs to the ``postgres`` user and
its commands run through ``runuser``. :func:`unavailable` says why no server can be made.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.recovery_helpers import free_port
from triggerhooks.testing import wait_for

__all__ = ["PASSWORD", "PostgresServer", "postgres_server", "unavailable"]

PASSWORD = "pg#s3cr/t?x@y"
"""The password of the cluster's ``postgres`` user (on TCP; the socket trusts): every
character that breaks a URL."""
ENCODED = "pg%23s3cr%2Ft%3Fx%40y"


def _bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if found:
        return Path(found[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _owner() -> str | None:
    """Who runs the cluster: ``postgres`` when this is root, else this user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "(none)"
    return "postgres"


def unavailable() -> str | None:
    """Why this machine cannot run a server of a test's own, or ``None``."""
    if _bin() is None:
        return "no initdb/pg_ctl (Debian: apt-get install postgresql)"
    if _owner() == "(none)":
        return "running as root without a 'postgres' user to run initdb as"
    if _owner() is not None and shutil.which("runuser") is None:
        return "running as root without runuser"
    return None


class PostgresServer:
    """A cluster in a fresh directory, on a free port: ``url`` reaches it with the password."""

    def __init__(self) -> None:
        binaries = _bin()
        assert binaries is not None
        self.bin = binaries
        self.owner = _owner()
        self.directory = Path(tempfile.mkdtemp(prefix="thpg-"))
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"
        self.port = free_port()
        if self.owner:
            shutil.chown(self.directory, self.owner, self.owner)
        pwfile = self.directory / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.owner:
            shutil.chown(pwfile, self.owner, self.owner)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--pwfile", str(pwfile),
                  "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8",
                  "--no-sync")
        pwfile.unlink()

    @property
    def url(self) -> str:
        return f"postgresql://postgres:{ENCODED}@127.0.0.1:{self.port}/postgres"

    def _run(self, command: str, *args: str) -> None:
        argv = [str(self.bin / command), *args]
        if self.owner:
            argv = ["runuser", "-u", self.owner, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False,
                              cwd=self.directory)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise AssertionError(f"{command} failed: {done.stdout}{done.stderr}\n{log}")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
                   "-c fsync=on -c synchronous_commit=on -c max_connections=60")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "60", "start")
        wait_for(self.answers, 30, f"PostgreSQL on port {self.port} to answer")

    def answers(self) -> bool:
        done = subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p",
                               str(self.port)], capture_output=True, check=False, timeout=30)
        return done.returncode == 0

    def kill(self) -> None:
        """``pg_ctl stop -m immediate``: every server process quits at once, mid-transaction;
        the next start recovers from the write-ahead log, as after a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()
