"""Leased claims: who runs a task instance, and until when that holds without news.

A runner whose workers can die mid-task (Celery with ``acks_late``) executes
with a lease: ``manager.execute(name, lease=30, worker="w1")``. The claim
(``scheduled -> running``) then records, in ``metadata["claim"]``, a fresh
token, the worker, the attempt number and when the lease expires; a
heartbeat renews the lease while the task runs. The rules:

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
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType

from ..exceptions import WorkerLostError
from ..models import TaskInstance
from ..serialization import JsonDict

__all__ = ["DEFAULT_MAX_ATTEMPTS", "Claim", "Heartbeat", "Lease", "claim_of"]

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 3
"""How many times an instance may be started under leases before a lost worker fails it."""


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
        if not self.seconds > 0:
            raise ValueError(f"a lease must last a positive number of seconds, not {self.seconds!r}")
        limit = self.max_attempts
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 1):
            raise ValueError(f"max_attempts must be a positive integer or None, not {limit!r}")
        if not self.token:
            object.__setattr__(self, "token", uuid.uuid4().hex)


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

    def expired(self, now: str) -> bool:
        return datetime.fromisoformat(self.expires_at) <= datetime.fromisoformat(now)

    def remaining(self, now: str) -> float:
        """Seconds until the lease expires (0 when it has)."""
        delta = datetime.fromisoformat(self.expires_at) - datetime.fromisoformat(now)
        return max(delta.total_seconds(), 0.0)

    @classmethod
    def start(cls, lease: Lease, attempt: int, now: str) -> Claim:
        return cls(lease.token, lease.worker, attempt, now, _after(now, lease.seconds))

    def taken_over(self, lease: Lease, now: str) -> Claim:
        """The next attempt's claim, for ``lease``; this claim's worker is remembered as lost."""
        return Claim(lease.token, lease.worker, self.attempt + 1, now, _after(now, lease.seconds),
                     (*self.lost, self.worker))

    def renewed(self, now: str, seconds: float) -> Claim:
        return Claim(self.token, self.worker, self.attempt, self.claimed_at, _after(now, seconds),
                     self.lost)

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
        return data

    @classmethod
    def from_json(cls, data: JsonDict) -> Claim:
        return cls(data["token"], data.get("worker"), int(data["attempt"]), data["claimedAt"],
                   data["expiresAt"], tuple(data.get("lostWorkers", ())))


def _after(now: str, seconds: float) -> str:
    return (datetime.fromisoformat(now) + timedelta(seconds=seconds)).isoformat()


def claim_of(instance: TaskInstance) -> Claim | None:
    """The leased claim recorded on an instance, if it was claimed with a lease."""
    data = instance.metadata.get("claim")
    return Claim.from_json(data) if isinstance(data, dict) else None


class Heartbeat:
    """Calls ``renew()`` every ``interval`` seconds in a daemon thread, inside a ``with`` block.

    ``renew`` returns False once the claim is lost (taken over); the heartbeat
    then stops and logs a warning. Errors (storage unreachable) are logged and
    retried at the next beat: the lease simply runs out if they persist.
    """

    def __init__(self, renew: Callable[[], bool], interval: float, what: str) -> None:
        self._renew = renew
        self._interval = interval
        self._what = what
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"triggerhooks heartbeat {what}",
                                        daemon=True)
        self.lost = False

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if not self._renew():
                    self.lost = True
                    log.warning("%s: the claim was lost (taken over after its lease expired); "
                                "this run's outcome will not be stored", self._what)
                    return
            except Exception as exc:
                log.warning("%s: renewing the lease failed: %s", self._what, exc)
