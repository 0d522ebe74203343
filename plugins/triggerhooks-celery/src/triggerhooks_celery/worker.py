"""What a Celery worker does with a triggerhooks message.

Every message carries one JSON document: the session reference (manager key,
storage reference, runner) and either an instance name or a background
receiver call. The worker rebuilds the manager through the registries and
lets it do the rest. Redelivery is safe because of the claim rules
(:mod:`triggerhooks.core.leases`):

* ``scheduled``: claim it (with a lease renewed by a heartbeat) and run it;
* ``running`` with an expired lease (its worker died): take it over, run it —
  unless it was started ``trigger_claim_max_attempts`` times already: then it
  ends ``failed`` (``WorkerLostError``), waiting for a replay or a skip;
* ``running`` with a live lease (a redelivered copy while its worker still
  runs it, or a requeue that came faster than the lease ran out): send the
  message again, due when the lease would expire, and check then;
* anything else (``finished``, ``failed``, ``abandoned``, ...): nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from triggerhooks import TaskStatus
from triggerhooks.ext import BackgroundCall, JsonDict, claim_of, open_session, utcnow

from .settings import DEFAULT_LEASE, DEFAULT_MAX_ATTEMPTS

__all__ = ["execute_instance", "run_receiver"]

log = logging.getLogger(__name__)


def execute_instance(task: Task[Any, Any], payload: JsonDict) -> JsonDict:
    """Run the instance ``payload["instance"]`` of the session ``payload["session"]``."""
    manager = open_session(payload["session"])
    name = payload["instance"]
    conf = task.app.conf
    lease = float(conf.get("trigger_claim_lease") or DEFAULT_LEASE)
    limit = conf.get("trigger_claim_max_attempts", DEFAULT_MAX_ATTEMPTS)
    done = manager.execute(name, lease=lease, worker=task.request.hostname,
                           max_attempts=None if limit is None else int(limit))
    if done is not None:
        return {"instance": name, "status": done.status.value}
    current = manager.storage.get(name)
    claim = None if current is None else claim_of(current)
    if current is not None and current.status is TaskStatus.RUNNING and claim is not None:
        wait = claim.remaining(utcnow()) + min(1.0, lease / 10)
        log.info("%s: %s is running on %s (attempt %s); checking again in %.1fs",
                 manager.storage.uid, name, claim.worker, claim.attempt, wait)
        raise task.retry(countdown=wait)
    return {"instance": name, "status": None if current is None else current.status.value}


def run_receiver(task: Task[Any, Any], payload: JsonDict) -> None:
    """Make the background receiver call ``payload["call"]`` for ``payload["session"]``."""
    BackgroundCall.from_json(payload["call"]).run(open_session(payload["session"]))
