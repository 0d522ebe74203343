"""Celery configuration of the test workers and of the test process ($TRIGGERHOOKS_CELERY_CONFIG).

Everything lives under one key prefix per test run, on the shared Redis, so
that the run deletes exactly what it created.
"""

from __future__ import annotations

import os

PREFIX = os.environ["TH_CELERY_TEST_PREFIX"]
REDIS_URL = os.environ.get("TH_CELERY_TEST_REDIS", "redis://127.0.0.1:6379/0")

broker_url = REDIS_URL
result_backend = REDIS_URL
broker_transport_options = {
    "global_keyprefix": PREFIX,
    # A message whose worker died is delivered again after 3s (restores checked every second).
    "visibility_timeout": 3,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
result_backend_transport_options = {"global_keyprefix": PREFIX}
worker_enable_remote_control = False
worker_send_task_events = False
trigger_claim_lease = 1.5
trigger_claim_max_attempts = 2  # not the default (3): the tests see that it is read
