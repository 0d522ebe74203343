"""Names and defaults shared by the runner (which imports no Celery) and the worker side."""

from __future__ import annotations

__all__ = ["CONFIG_ENV", "DEFAULT_LEASE", "EXECUTE_TASK", "RECEIVER_TASK"]

CONFIG_ENV = "TRIGGERHOOKS_CELERY_CONFIG"
"""Dotted name of a Celery configuration module for the default app."""

EXECUTE_TASK = "triggerhooks.execute"
"""The Celery task that runs one trigger task instance: ``{"session": ..., "instance": ...}``."""
RECEIVER_TASK = "triggerhooks.receive"
"""The Celery task that runs one background receiver call: ``{"session": ..., "call": ...}``."""

DEFAULT_LEASE = 60.0
"""Seconds a worker's claim on a running instance holds without a heartbeat, unless
the app's setting ``trigger_claim_lease`` says otherwise; a heartbeat renews it
every third of that."""
