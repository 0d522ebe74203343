"""Names and defaults shared by the runner (which imports no Celery) and the worker side."""

from __future__ import annotations

__all__ = ["CONFIG_ENV", "DEFAULT_CLAIM_GRACE", "DEFAULT_LEASE", "DEFAULT_MAX_ATTEMPTS",
           "DEFAULT_SWEEP_INTERVAL", "EXECUTE_TASK", "RECEIVER_TASK", "STORAGE_URL_ENV"]

STORAGE_URL_ENV = "TRIGGERHOOKS_STORAGE_URL"
"""The storage the sweeper covers when ``trigger_sweep_storages`` is not set."""

CONFIG_ENV = "TRIGGERHOOKS_CELERY_CONFIG"
"""Dotted name of a Celery configuration module for the default app."""

EXECUTE_TASK = "triggerhooks.execute"
"""The Celery task that runs one trigger task instance: ``{"session": ..., "instance": ...}``."""
RECEIVER_TASK = "triggerhooks.receive"
"""The Celery task that runs one background receiver call: ``{"session": ..., "call": ...}``."""

DEFAULT_LEASE = 30.0
"""Seconds a worker's claim on a running instance holds without a heartbeat, unless
the app's setting ``trigger_claim_lease`` says otherwise; a heartbeat renews it
every third of that."""

DEFAULT_MAX_ATTEMPTS: int | None = 3
"""How many times an instance may be started before a worker lost once more fails it
(``WorkerLostError``) instead of taking it over, unless the app's setting
``trigger_claim_max_attempts`` says otherwise (``None``: no limit)."""

DEFAULT_CLAIM_GRACE = 30.0
"""Seconds a scheduled instance may wait for a worker to claim it, after it was due, before
the sweeper sends its message again (``trigger_claim_grace``)."""

DEFAULT_SWEEP_INTERVAL = 15.0
"""Seconds between two sweeps of a worker (``trigger_sweep_interval``)."""

