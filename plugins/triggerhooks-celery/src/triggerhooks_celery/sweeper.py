"""The sweeper: recovery that does not wait for the broker.

A message can be lost outright (a worker killed between the transport's pop
and its bookkeeping), held by a dead worker until the broker's visibility
timeout, or never sent (the broker down when ``fire()`` stored the firing).
Each leaves its instance ``scheduled`` or ``running`` with a lease that
nothing renews. Every worker's main process therefore runs a sweeper thread:
every ``trigger_sweep_interval`` seconds it asks each configured storage for
its sessions with open work (``StorageBackend.active_sessions()``, an index:
no scan of every session) and recovers each (``TriggerManager.recover()``),
which sends a new message for every instance that is stuck. Sweeps of several
workers may overlap: a recovery checks each instance again under its commit,
and the claim starts nothing twice.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Iterable
from typing import Any

from triggerhooks import TriggerhooksError, open_storage, trigger_managers
from triggerhooks.ext import Recovery

from .settings import (
    DEFAULT_CLAIM_GRACE,
    DEFAULT_SWEEP_INTERVAL,
    STORAGE_URL_ENV,
)

__all__ = ["Sweeper", "sweep", "sweep_storages"]

log = logging.getLogger(__name__)

SWEEP_UID = "triggerhooks-sweeper"
"""The uid of the storage a sweep opens to list a store's sessions (it holds nothing)."""


def sweep_storages(conf: Any) -> list[str]:
    """The storage URLs a sweep covers: ``trigger_sweep_storages`` (a list or a
    comma-separated string), else ``$TRIGGERHOOKS_STORAGE_URL``."""
    given = conf.get("trigger_sweep_storages")
    if given is None:
        given = os.environ.get(STORAGE_URL_ENV, "")
    if isinstance(given, str):
        given = given.split(",")
    return [url.strip() for url in given if url and url.strip()]


def sweep(urls: Iterable[str], *, manager: str = "default",
          claim_grace: float = DEFAULT_CLAIM_GRACE) -> dict[str, list[Recovery]]:
    """Recover every session with open work in each storage of ``urls``, handing stuck
    instances to the ``celery`` runner; what was done, by session uid (those with nothing
    to do left out). Errors are logged: one storage or session does not stop the rest."""
    done: dict[str, list[Recovery]] = {}
    for url in urls:
        try:
            uids = open_storage(url, SWEEP_UID).active_sessions()
        except (TriggerhooksError, NotImplementedError) as exc:
            log.warning("sweep: cannot list the sessions of a storage: %s", exc)
            continue
        for uid in uids:
            try:
                session = trigger_managers.get(manager, open_storage(url, uid),
                                               task_runner="celery",
                                               claim_grace_seconds=claim_grace)
                recovered = session.recover()
            except Exception as exc:
                log.warning("sweep: recovering session %r failed: %s", uid, exc)
                continue
            if recovered:
                done[uid] = recovered
                for entry in recovered:
                    log.warning("sweep: %s %s in session %r (%s)", entry.action,
                                entry.instance or "the session", uid, entry.reason)
    return done


class Sweeper:
    """A daemon thread that runs :func:`sweep` every ``interval`` seconds (with a little
    jitter, so that the workers' sweeps spread out) until :meth:`stop`."""

    def __init__(self, urls: list[str], interval: float = DEFAULT_SWEEP_INTERVAL,
                 manager: str = "default", claim_grace: float = DEFAULT_CLAIM_GRACE) -> None:
        if not interval > 0:
            raise ValueError(f"trigger_sweep_interval must be positive, not {interval!r}")
        self.urls = urls
        self.interval = interval
        self.manager = manager
        self.claim_grace = claim_grace
        self.sweeps = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="triggerhooks sweeper",
                                        daemon=True)

    def start(self) -> Sweeper:
        log.info("sweeper: every %.0fs over %d storage(s)", self.interval, len(self.urls))
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval * random.uniform(0.8, 1.2)):
            try:
                sweep(self.urls, manager=self.manager, claim_grace=self.claim_grace)
            except Exception:  # pragma: no cover - sweep logs its own errors
                log.exception("sweeper: a sweep failed")
            self.sweeps += 1
