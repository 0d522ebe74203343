"""Testing toolbox: assertion helpers, a unittest mixin, signal capture and pytest fixtures.

The pytest fixtures (``triggerhooks_manager``, ``triggerhooks_storage``,
``triggerhooks_storage_url``, ``triggerhooks_signals``) are registered
automatically through the ``pytest11`` entry point when triggerhooks is installed.
"""

from __future__ import annotations

from .assertions import (
    TriggerManagerTestCaseMixin,
    assert_instance_abandoned,
    assert_instance_failed,
    assert_instance_finished,
    assert_instance_missing,
    assert_instance_replayed,
    assert_instance_skipped,
    assert_instance_status,
    assert_instance_unstarted,
    assert_unresolved_instances,
    assert_unresolved_tasks,
    describe_instance,
)
from .signals import CapturedSignals, SentSignal, capture_signals, connected
from .waiting import wait_for

__all__ = [
    "CapturedSignals",
    "SentSignal",
    "TriggerManagerTestCaseMixin",
    "assert_instance_abandoned",
    "assert_instance_failed",
    "assert_instance_finished",
    "assert_instance_missing",
    "assert_instance_replayed",
    "assert_instance_skipped",
    "assert_instance_status",
    "assert_instance_unstarted",
    "assert_unresolved_instances",
    "assert_unresolved_tasks",
    "capture_signals",
    "connected",
    "describe_instance",
    "wait_for",
]
