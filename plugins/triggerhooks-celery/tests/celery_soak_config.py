"""Celery configuration of the soak workers and fire processes ($TRIGGERHOOKS_CELERY_CONFIG).

Everything comes from the environment the soak harness (``celery_soak``) sets:
the broker (a Redis server of the run's own, or a RabbitMQ vhost of its own),
the storage the sweeper covers, and short leases so that the run drains fast.
"""

from __future__ import annotations

import os

broker_url = os.environ["SOAK_BROKER_URL"]
worker_enable_remote_control = False
worker_send_task_events = False
broker_connection_retry_on_startup = True
broker_connection_max_retries = None  # a broker restart is part of the soak: keep trying
# The Redis transport's default visibility timeout (an hour) is kept: a message held by a
# killed worker comes back only through the sweeper, which is what the soak checks.
trigger_claim_lease = float(os.environ.get("SOAK_LEASE", "3"))
trigger_claim_grace = float(os.environ.get("SOAK_GRACE", "3"))
trigger_sweep_interval = float(os.environ.get("SOAK_SWEEP_INTERVAL", "2"))
trigger_sweep_storages = [os.environ["SOAK_STORAGE_URL"]]
