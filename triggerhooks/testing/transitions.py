"""Running one transition of the rules against a storage, as the manager does."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..core.leases import Claim, claim_of
from ..core.rules import Transition, transition
from ..core.types import Commit, Plan
from ..storages import StorageBackend

__all__ = ["expire_claim", "run_transition"]

LONG_AGO = "2000-01-01T00:00:00+00:00"


def run_transition(storage: StorageBackend, plan: Plan,
                   body: Callable[[Transition], Any]) -> Commit:
    """Run ``body`` on a fresh :class:`~triggerhooks.core.rules.Transition` in one
    transaction of ``storage`` that reads ``plan``; what ``body`` returns is
    ``commit.changes.result``. No signal is sent and no runner is called."""
    return storage.transact(plan, transition(body))


def expire_claim(storage: StorageBackend, name: str) -> Claim:
    """Move the lease on the running instance ``name`` into the past, as if its worker
    had been gone for long; the next ``execute()`` may take it over. Returns the claim."""
    def expire(step: Transition) -> Claim:
        instance = step.instance(name)
        held = claim_of(instance)
        if held is None:
            raise ValueError(f"{name} holds no leased claim")
        past = dataclasses.replace(held, expires_at=LONG_AGO)
        step.put(instance, instance.status, metadata={"claim": past.to_json()})
        return past

    expired: Claim = run_transition(storage, Plan(instances=(name,)), expire).changes.result
    return expired
