"""Firing after the database transaction commits: never for work that was rolled back.

A view that saves an order and fires ``orderPlaced`` inside one transaction
must not start tasks for an order that a later error rolls back, nor start
them before the order is visible to the workers' own connections.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.db import DEFAULT_DB_ALIAS, transaction

from triggerhooks import InvalidTriggerError, UnstorableKwargsError

from .managers import get_manager

__all__ = ["fire_on_commit"]


def _copy(kwargs: Mapping[str, Any] | None, trigger: str) -> dict[str, Any]:
    """The kwargs as they will be stored, copied now; what JSON cannot hold is refused now."""
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping):
        raise UnstorableKwargsError(f"kwargs of trigger {trigger!r} must be a mapping, "
                                    f"not {type(kwargs).__name__}")
    try:
        copied: dict[str, Any] = json.loads(json.dumps(dict(kwargs), allow_nan=False))
    except (TypeError, ValueError, RecursionError) as exc:
        raise UnstorableKwargsError(f"kwargs of trigger {trigger!r} cannot be stored as "
                                    f"JSON: {exc}") from None
    return copied


def fire_on_commit(session: str, trigger: str, kwargs: Mapping[str, Any] | None = None, *,
                   using: str | None = None, key: str | None = None,
                   robust: bool = False) -> None:
    """Fire ``trigger`` into ``session`` once the transaction of database ``using``
    (default ``"default"``) commits; never if it rolls back, nor if the savepoint it was
    called in is rolled back.

    Outside a transaction (autocommit) Django runs the callback at once, so the
    trigger fires before this returns. ``kwargs`` are checked and copied now: a value
    that is not JSON raises here, in the request, and later changes to the mapping
    are not seen; the settings are read and the manager built now too, so a bad setting
    raises here. ``key`` makes the firing idempotent (``manager.fire(key=...)``): a
    retried request that commits again does not fire twice. With ``robust``, an error
    of the fire (a storage that is down) is logged instead of raised from the commit
    (Django's ``on_commit(robust=True)``).
    """
    if not isinstance(trigger, str) or not trigger:
        raise InvalidTriggerError(f"a trigger name must be a non-empty string, not {trigger!r}")
    if key is not None and (not isinstance(key, str) or not key):
        raise InvalidTriggerError(f"a fire key must be a non-empty string, not {key!r}")
    payload = _copy(kwargs, trigger)
    manager = get_manager(session)  # a bad setting fails here, in the request, not after it
    if key is not None and not manager.storage.supports_fire_keys:
        raise NotImplementedError(f"{type(manager.storage).__name__} does not keep fire keys; "
                                  "fire without key=")

    def fire() -> None:
        manager.fire(trigger, payload, key=key)

    transaction.on_commit(fire, using=using or DEFAULT_DB_ALIAS, robust=robust)
