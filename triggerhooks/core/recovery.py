"""Recovering stuck instances: nothing scheduled stays unclaimed, nothing running outlives
its worker.

An instance is stuck when it is ``scheduled`` and no runner claimed it within
the grace time after it was due (its hand-off was lost: a process killed
between the commit and the hand-off, a broker that dropped the message), or
``running`` with an expired lease (its worker died: see :mod:`.leases`).
Recovering it hands it to its runner again: the runner's ``execute`` claims a
scheduled instance, or takes a running one over — unless the lost attempts
reached the claim's ``maxAttempts``: the instance then ends ``failed`` with a
:class:`~triggerhooks.exceptions.WorkerLostError`. The claim keeps it exactly
once: two recoveries of one instance, or a recovery racing the first
hand-off, start it once.

A recovery also repairs what a process killed between a firing and its
follow-up leaves: a task whose triggers have all fired but that has no
instance scheduled yet is scheduled, a vetoed one abandoned, and a session
whose tasks are all resolved is finalized.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..models import TaskConfig, TaskInstance, TaskStatus
from ..serialization import JsonDict
from .leases import claim_of

__all__ = ["DEFAULT_CLAIM_GRACE_SECONDS", "Recovery", "Stuck", "stuck"]

DEFAULT_CLAIM_GRACE_SECONDS = 60.0
"""How long a scheduled instance may wait for a runner to claim it, after it was due."""

_SCHEDULED = TaskStatus.SCHEDULED
_RUNNING = TaskStatus.RUNNING


@dataclass(frozen=True, slots=True)
class Stuck:
    """Why an instance counts as stuck, and since when."""

    instance: str
    status: str
    reason: str
    """``"unclaimed"`` (scheduled, no runner claimed it) or ``"lease expired"``."""
    since: str
    """When it was due to be claimed, or when its lease expired."""
    worker: str | None = None
    attempt: int | None = None
    exhausted: bool = False
    """Its lost attempts reached the claim's ``maxAttempts``: recovering fails it."""

    def to_json(self) -> JsonDict:
        return {"instance": self.instance, "status": self.status, "reason": self.reason,
                "since": self.since, "worker": self.worker, "attempt": self.attempt,
                "exhausted": self.exhausted}


@dataclass(frozen=True, slots=True)
class Recovery:
    """One thing a recovery did: ``action`` is ``"handed off"``, ``"failed"`` (a worker lost
    too often), ``"scheduled"`` (a ready task had no instance), ``"abandoned"`` (a vetoed
    one was waiting) or ``"finalized"``."""

    action: str
    instance: str | None = None
    reason: str = ""

    def to_json(self) -> JsonDict:
        return {"action": self.action, "instance": self.instance, "reason": self.reason}


def _later(stamp: str, seconds: float) -> datetime:
    return datetime.fromisoformat(stamp) + timedelta(seconds=seconds)


def _handed_at(instance: TaskInstance) -> str | None:
    """When the instance was last due to a runner: scheduled (or due after a countdown),
    or handed off again by a recovery — whichever came last (an instance may be scheduled
    again long after a recovery handed it off)."""
    meta = instance.metadata
    recovered = meta.get("recovered")
    stamps = [meta.get("timestamps", {}).get("scheduled"), meta.get("due"),
              recovered.get("at") if isinstance(recovered, dict) else None]
    known = [datetime.fromisoformat(stamp) for stamp in stamps if isinstance(stamp, str) and stamp]
    return max(known).isoformat() if known else None


def stuck(instance: TaskInstance, grace: float, now: str) -> Stuck | None:
    """Whether ``instance`` is stuck at ``now`` (``grace``: seconds a scheduled instance may
    wait for its claim), and why."""
    if instance.status is _SCHEDULED:
        handed = _handed_at(instance)
        if handed is None:
            return None
        since = _later(handed, grace)
        if since > datetime.fromisoformat(now):
            return None
        return Stuck(instance.name, _SCHEDULED.value, "unclaimed", since.isoformat())
    if instance.status is _RUNNING:
        claim = claim_of(instance)
        if claim is None or not claim.expired(now):
            return None
        recovered = instance.metadata.get("recovered")
        if (isinstance(recovered, dict) and str(recovered.get("at")) > claim.expires_at
                and _later(str(recovered["at"]), grace) > datetime.fromisoformat(now)):
            return None  # handed off again after the lease expired: its runner has it
        return Stuck(instance.name, _RUNNING.value, "lease expired", claim.expires_at,
                     claim.worker, claim.attempt, claim.exhausted)
    return None


def handed_again(instance: TaskInstance, now: str) -> JsonDict:
    """The metadata a recovery stamps on an instance it hands off again (so that other
    recoveries leave it alone for another grace time)."""
    recovered = instance.metadata.get("recovered")
    count = int(recovered.get("count", 0)) if isinstance(recovered, dict) else 0
    return {"recovered": {"at": now, "count": count + 1}}


def still_stuck(instance: TaskInstance, config: TaskConfig) -> bool:
    """A recovered instance is still worth handing off after its commit."""
    del config
    return instance.status in (_SCHEDULED, _RUNNING)
