"""What the recovery tests share: a task that records every start in a file (and can block on
its first attempt, as a task whose worker is about to die), runners that lose or kill their
hand-off, a transition that records a firing and nothing else (a process killed between a
firing's record and its follow-up), and a Redis server of the test's own that it kills and
restarts.

Importable by spawned processes: importing it registers the tasks, never the runners (a test
registers those for a block, with ``registered_class``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from triggerhooks import TaskStatus, TriggerManager
from triggerhooks.core.leases import claim_of
from triggerhooks.core.rules import Transition
from triggerhooks.runners import TaskRunner
from triggerhooks.storages import Commit, Plan, StorageBackend
from triggerhooks.task import TaskContext, TriggerTask
from triggerhooks.testing import run_transition, wait_for

__all__ = ["RECORD", "DroppingRunner", "FailingRunner", "KillingRunner", "RedisServer", "append",
           "open_work", "record_only", "redis_server", "runs", "started", "with_record"]

RECORD = "recovery.record"


def with_record(path: Path | str, **options: Any) -> dict[str, Any]:
    """``withParams`` for :data:`RECORD`: where it records, and how it behaves."""
    return {"rec": {"path": str(path), **options}}


class Record(TriggerTask):
    """Appends ``"<instance> <attempt> <pid>"`` to ``rec.path`` when it starts (one ``write``
    of a short line with ``O_APPEND``: whole lines, whatever the number of processes).

    ``rec.hold`` (a path): on its first attempt, it then blocks while that file exists (at
    most ``rec.max`` seconds, default 60), as a task does whose worker is killed meanwhile.
    ``rec.sleep`` (seconds): it then sleeps that long, on every attempt.
    """

    name = RECORD

    def _run(self, context: TaskContext) -> dict[str, Any]:
        options = context.trigger_kwargs.get("rec", {})
        instance = context.task_instance
        claim = claim_of(instance)
        attempt = claim.attempt if claim is not None else 0
        append(options["path"], f"{instance.name} {attempt} {os.getpid()}")
        hold = options.get("hold")
        if hold and attempt <= 1:
            deadline = time.monotonic() + float(options.get("max", 60))
            while os.path.exists(hold) and time.monotonic() < deadline:
                time.sleep(0.02)
        if options.get("sleep"):
            time.sleep(float(options["sleep"]))
        return {"ran": instance.name, "attempt": attempt}


def append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def runs(path: Path) -> list[tuple[str, int, int]]:
    """What :class:`Record` wrote: ``(instance, attempt, pid)`` per start, in order."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        name, attempt, pid = line.split()
        found.append((name, int(attempt), int(pid)))
    return found


def started(path: Path) -> Counter[str]:
    """How often each instance was started."""
    return Counter(name for name, _, _ in runs(path))


def open_work(storage: StorageBackend) -> dict[str, str]:
    """The instances left ``scheduled`` or ``running``, with their status."""
    return {instance.name: instance.status.value for instance in storage
            if instance.status in (TaskStatus.SCHEDULED, TaskStatus.RUNNING)}


class DroppingRunner(TaskRunner):
    """Loses every hand-off, as a process killed between its commit and its hand-off does
    (or a broker that dropped the message): the instance stays ``scheduled``."""

    name: ClassVar[str] = "dropping"
    dropped: ClassVar[list[str]] = []

    def schedule(self, manager: TriggerManager, instance_name: str, countdown: float = 0.0) -> None:
        type(self).dropped.append(instance_name)


class KillingRunner(TaskRunner):
    """Kills its own process (SIGKILL) when handed an instance: the commit is stored, the
    hand-off never happens."""

    name: ClassVar[str] = "killing"

    def schedule(self, manager: TriggerManager, instance_name: str, countdown: float = 0.0) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


class FailingRunner(TaskRunner):
    """A hand-off that fails (a broker that is down)."""

    name: ClassVar[str] = "failing"

    def schedule(self, manager: TriggerManager, instance_name: str, countdown: float = 0.0) -> None:
        raise ConnectionError(f"the broker is down: {instance_name} was not sent")


def record_only(storage: StorageBackend, trigger: str, raw: bytes = b"{}") -> Commit:
    """Store a firing of ``trigger`` and nothing that follows from it, as a process killed
    between the two does (Redis records a firing it knows nothing of in a round trip of its
    own, counting down the tasks that require it, before it computes and commits the rest)."""
    def body(step: Transition) -> None:
        first = not step.view.fired(trigger)
        step.changes.fired[trigger] = raw
        if first:
            for config in step.view.tasks_for(trigger):
                if trigger in config.required:
                    step.changes.first_fired[config.name] = (
                        step.changes.first_fired.get(config.name, 0) + 1)
    return run_transition(storage, Plan(trigger=trigger, record=raw), body)


# -- a Redis server of the test's own ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """``redis-server`` on a free port, its data in ``directory``, every acknowledged write
    on disk before the reply (``appendfsync always``), so a SIGKILL loses none of them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                   "--dir", str(self.directory), "--appendonly", "yes",
                   "--appendfsync", "always", "--save", "", "--logfile", str(self.log)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_for(self.answers, 20, f"redis-server on port {self.port} to answer")

    def answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"redis-server exited:\n{self.log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the server dies at once, in the middle of whatever it was doing."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)


@contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
