"""Helpers of the Celery tests: worker processes and what the test tasks recorded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import redis

from triggerhooks import SqliteStorageBackend, StorageBackend, storage_backends
from triggerhooks.ext import wait_for

HERE = Path(__file__).resolve().parent
PREFIX = os.environ["TH_CELERY_TEST_PREFIX"]
REDIS_URL = os.environ.get("TH_CELERY_TEST_REDIS", "redis://127.0.0.1:6379/0")


def session_storage(uid: str, sqlite_path: Path) -> StorageBackend:
    """A storage every worker reaches: Redis (under the run's prefix) when the core has it,
    else one SQLite file (workers on this machine)."""
    if "redis" in storage_backends:
        return storage_backends.get("redis", uid, REDIS_URL, prefix=f"{PREFIX}sessions")
    return SqliteStorageBackend(uid, sqlite_path)

class Worker:
    """One ``celery worker`` process, its log in a file."""

    def __init__(self, name: str, log_dir: Path) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def hostname(self) -> str:
        return f"{self.name}@celery-tests"

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               # Signals are sent where tasks complete: the workers load the receivers too.
               "TRIGGERHOOKS_RECEIVER_MODULES": "celery_test_receivers",
               "PYTHONPATH": os.pathsep.join(
                   [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])}
        command = [sys.executable, "-m", "celery", "-A", "triggerhooks_celery", "worker",
                   "-P", "solo", "-c", "1", "-n", self.hostname, "-I", "celery_test_tasks",
                   "--without-gossip", "--without-mingle", "--without-heartbeat",
                   "--loglevel=INFO"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, cwd=HERE, env=env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.name} exited:\n{self.output()}")
            return f"{self.hostname} ready." in self.output()
        wait_for(ready, timeout, f"worker {self.name} to be ready")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the worker dies at once, holding whatever message it had."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if not self.alive:
            return
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


class Fleet:
    """The test workers, by name."""

    def __init__(self, log_dir: Path, names: list[str]) -> None:
        self.workers = {name: Worker(name, log_dir) for name in names}

    def start(self) -> None:
        for worker in self.workers.values():
            if not worker.alive:
                worker.start()
        for worker in self.workers.values():
            worker.wait_ready()

    def by_hostname(self, hostname: str) -> Worker:
        return next(w for w in self.workers.values() if w.hostname == hostname)

    @property
    def hostnames(self) -> set[str]:
        return {worker.hostname for worker in self.workers.values()}

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()

    def output(self) -> str:
        """Every worker's whole log."""
        return "\n".join(worker.output() for worker in self.workers.values())

    def logs(self) -> str:
        return "\n".join(f"--- {w.name} ---\n{w.output()[-4000:]}" for w in self.workers.values())


def runs(client: redis.Redis, instance: str | None = None) -> list[dict[str, Any]]:
    """The runs the test tasks recorded (of one instance, or all)."""
    found = [orjson.loads(raw) for raw in client.lrange(f"{PREFIX}runs", 0, -1)]
    return [run for run in found if instance is None or run["instance"] == instance]
