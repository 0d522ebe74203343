"""Leased claims: who runs a task instance, and until when that holds without news.

Every execution holds a lease (``manager.execute(name, lease=30, worker="w1")``;
the manager's ``lease_seconds`` by default): the claim (``scheduled ->
running``) records, in ``metadata["claim"]``, a fresh token, the worker, the
attempt number, the attempts allowed and when the lease expires; one heartbeat
thread per process renews the leases of every task the process runs. A
process that dies mid-task (killed, out of memory, a machine lost) stops
renewing, and its instance can be recovered once the lease has expired
(:mod:`.recovery`). The rules:

* a message for a ``scheduled`` instance claims it (attempt 1);
* a message for a ``running`` instance whose lease has expired takes it over
  (attempt + 1): its worker is gone, the task runs again — unless that would
  exceed the lease's ``max_attempts``: the instance then ends ``failed``
  (``WorkerLostError``), so a task that kills its worker every time (a
  segfault, running out of memory) is not run forever;
* a message for a ``running`` instance whose lease is alive does nothing now
  (its runner may check again once the lease would have expired);
* anything else (finished, failed, ...) does nothing.

Only the holder of the current token may end the instance (finish, fail,
retry, status change), so a worker that lost its claim cannot overwrite the
outcome of the one that took over: an instance ends exactly once, even though
its task code may have started more than once (at-least-once execution).
Leases compare wall clocks of different machines: keep them in sync (NTP)
and the lease well above their skew.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType

from ..exceptions import WorkerLostError
from ..models import TaskInstance
from ..serialization import JsonDict, safe_text

__all__ = ["DEFAULT_LEASE_SECONDS", "DEFAULT_MAX_ATTEMPTS", "Claim", "Heartbeat", "Lease",
           "after", "claim_of", "default_worker"]

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 3
"""How many times an instance may be started under leases before a lost worker fails it."""
DEFAULT_LEASE_SECONDS = 30.0
"""How long a claim holds without a heartbeat (renewed every third of it)."""


_process: tuple[int, str] = (0, "")


def default_worker() -> str:
    """This process's (and thread's) name as a claim records it: ``host:pid/thread``."""
    global _process
    pid, name = _process
    if pid != os.getpid():
        pid = os.getpid()
        name = f"{socket.gethostname()}:{pid}"
        _process = (pid, name)
    return f"{name}/{threading.current_thread().name}"


@dataclass(frozen=True, slots=True)
class Lease:
    """What an executor asks for when it claims: a new token, its name and the lease length.

    ``max_attempts`` caps takeovers: a running instance whose lease expired
    after its ``max_attempts``-th start fails instead of starting again
    (``None``: no limit; ``1``: never taken over).
    """

    seconds: float
    worker: str | None = None
    token: str = ""
    max_attempts: int | None = DEFAULT_MAX_ATTEMPTS

    def __post_init__(self) -> None:
        if not 0 < self.seconds <= threading.TIMEOUT_MAX:  # longer: its expiry overflows
            raise ValueError(f"a lease must last a positive number of seconds, not "
                             f"{self.seconds!r} (at most {threading.TIMEOUT_MAX:g})")
        limit = self.max_attempts
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 1):
            raise ValueError(f"max_attempts must be a positive integer or None, not {limit!r}")
        if not self.token:
            object.__setattr__(self, "token", os.urandom(16).hex())
        if self.worker is not None:  # a host or thread name UTF-8 cannot hold must not
            object.__setattr__(self, "worker", safe_text(self.worker))  # keep it unclaimed


@dataclass(frozen=True, slots=True)
class Claim:
    """A claim as stored in ``metadata["claim"]`` of a running (or ended) instance."""

    token: str
    worker: str | None
    attempt: int
    claimed_at: str
    expires_at: str
    lost: tuple[str | None, ...] = ()
    """The workers of the earlier attempts, whose leases expired (``lostWorkers``)."""
    max_attempts: int | None = None
    """The attempts the claiming lease allowed (``maxAttempts``; ``None``: no limit)."""

    @property
    def exhausted(self) -> bool:
        """No attempt is left after this one: a lost worker now fails the instance."""
        return self.max_attempts is not None and self.attempt >= self.max_attempts

    def expired(self, now: str) -> bool:
        return datetime.fromisoformat(self.expires_at) <= datetime.fromisoformat(now)

    def remaining(self, now: str) -> float:
        """Seconds until the lease expires (0 when it has)."""
        delta = datetime.fromisoformat(self.expires_at) - datetime.fromisoformat(now)
        return max(delta.total_seconds(), 0.0)

    @classmethod
    def start(cls, lease: Lease, attempt: int, now: str) -> Claim:
        return cls(lease.token, lease.worker, attempt, now, after(now, lease.seconds),
                   max_attempts=lease.max_attempts)

    def taken_over(self, lease: Lease, now: str) -> Claim:
        """The next attempt's claim, for ``lease``; this claim's worker is remembered as lost."""
        return Claim(lease.token, lease.worker, self.attempt + 1, now, after(now, lease.seconds),
                     (*self.lost, self.worker), lease.max_attempts)

    def renewed(self, now: str, seconds: float) -> Claim:
        return Claim(self.token, self.worker, self.attempt, self.claimed_at, after(now, seconds),
                     self.lost, self.max_attempts)

    def lost_metadata(self, instance: str, max_attempts: int) -> JsonDict:
        """What an instance stores when its worker was lost once more than ``max_attempts``
        allows (this claim's lease expired too): a ``WorkerLostError`` failure."""
        workers = [*self.lost, self.worker]
        known = [worker for worker in workers if worker]
        on = f"on {', '.join(known)}" if known else "on workers that gave no name"
        error = f"{WorkerLostError.__module__}.{WorkerLostError.__qualname__}"
        return {
            "exceptionType": error,
            "exceptionInfo": (
                f"{error}: {instance} lost its worker on each of "
                f"its {self.attempt} attempt{'s' * (self.attempt != 1)} (at most {max_attempts}): "
                f"its lease expired while it ran {on}. Replay or skip it.\n"),
            "exceptionContext": {"attempts": self.attempt, "maxAttempts": max_attempts,
                                 "workers": workers},
        }

    def to_json(self) -> JsonDict:
        data: JsonDict = {"token": self.token, "worker": self.worker, "attempt": self.attempt,
                          "claimedAt": self.claimed_at, "expiresAt": self.expires_at}
        if self.lost:
            data["lostWorkers"] = list(self.lost)
        if self.max_attempts is not None:
            data["maxAttempts"] = self.max_attempts
        return data

    @classmethod
    def from_json(cls, data: JsonDict) -> Claim:
        return cls(data["token"], data.get("worker"), int(data["attempt"]), data["claimedAt"],
                   data["expiresAt"], tuple(data.get("lostWorkers", ())),
                   data.get("maxAttempts"))


def after(now: str, seconds: float) -> str:
    """The ISO time ``seconds`` after ``now``."""
    return (datetime.fromisoformat(now) + timedelta(seconds=seconds)).isoformat()


def claim_of(instance: TaskInstance) -> Claim | None:
    """The leased claim recorded on an instance, if it was claimed with a lease."""
    data = instance.metadata.get("claim")
    return Claim.from_json(data) if isinstance(data, dict) else None


class _Beats:
    """The process's heartbeat thread: renews every registered lease when it falls due.

    One thread however many tasks run (a thread per task would cost more than the
    task); each renewal runs on a short-lived thread of its own, so a storage that hangs
    delays only the leases held on it. Started on first use, and again in a forked child
    (which has no threads).
    A forked child starts afresh: the leases it inherited are its parent's (renewing
    them would keep a dead parent's instances from being recovered), and the lock it
    inherited may have been held by the parent's heartbeat thread.
    """

    def __init__(self) -> None:
        self._reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._beats: dict[int, Heartbeat] = {}
        self._pid = 0
        self._wake_at = float("inf")
        self._idle = float("inf")

    def add(self, beat: Heartbeat) -> None:
        with self._cond:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="triggerhooks heartbeats",
                                 daemon=True).start()
            self._beats[id(beat)] = beat
            self._idle = min(self._idle, beat.interval)
            if beat.due < self._wake_at:
                self._cond.notify()

    def remove(self, beat: Heartbeat) -> None:
        with self._cond:
            self._beats.pop(id(beat), None)

    def _due(self) -> list[Heartbeat]:
        """Wait until a lease falls due; the beats due then. Idle, the thread still wakes
        every shortest interval it has seen, so that adding a beat rarely needs to wake it
        (a notification per task would cost more than the task)."""
        with self._cond:
            while True:
                now = time.monotonic()
                due = [beat for beat in self._beats.values() if beat.due <= now]
                if due:
                    return due
                self._wake_at = min((beat.due for beat in self._beats.values()),
                                    default=now + self._idle)
                self._cond.wait(self._wake_at - now if self._wake_at < float("inf") else None)

    def _run(self) -> None:
        while True:
            for beat in self._due():
                beat.due = time.monotonic() + beat.interval
                if beat.renewing:
                    continue  # its storage has not answered the last renewal yet
                # Each renewal on a thread of its own: a storage that hangs must not
                # hold back the leases held on the others.
                beat.renewing = True
                threading.Thread(target=self._renew, args=(beat,), daemon=True,
                                 name="triggerhooks heartbeat").start()

    def _renew(self, beat: Heartbeat) -> None:
        try:
            beat.beat()
        finally:
            beat.renewing = False
        if beat.lost:
            self.remove(beat)


_beats = _Beats()


class Heartbeat:
    """Renews a lease every ``interval`` seconds while inside a ``with`` block.

    ``renew`` returns False once the claim is lost (taken over); the heartbeat
    then stops and logs a warning. Errors (storage unreachable) are logged and
    retried at the next beat: the lease simply runs out if they persist.
    """

    def __init__(self, renew: Callable[[], bool], interval: float, what: str) -> None:
        self._renew = renew
        self.interval = interval
        self._what = what
        self.due = time.monotonic() + interval
        self.lost = False
        self.renewing = False
        self.active = False

    def __enter__(self) -> Heartbeat:
        self.active = True
        _beats.add(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.active = False
        _beats.remove(self)

    def beat(self) -> None:
        """Renew now (on a thread the heartbeat thread starts when it is due, having set the
        next due time)."""
        try:
            if not self._renew() and self.active:  # not the task ending meanwhile
                self.lost = True
                log.warning("%s: the claim was lost (taken over after its lease expired); "
                            "this run's outcome will not be stored", self._what)
        except Exception as exc:
            log.warning("%s: renewing the lease failed: %s", self._what, exc)
