"""Testing toolbox: assertion helpers, a unittest mixin, signal capture, pytest fixtures,
a task runner that holds instances and one transition of the rules run by hand.

The pytest fixtures (``triggerhooks_manager``, ``triggerhooks_storage``,
``triggerhooks_storage_url``, ``triggerhooks_signals``) are registered
automatically through the ``pytest11`` entry point when triggerhooks is installed.
The storage contract for backends is :mod:`triggerhooks.testing.contract` (imported on its own).
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
from .registries import registered_class
from .runners import HeldInstance, HoldingRunner, holding_runner
from .signals import CapturedSignals, SentSignal, capture_signals, connected
from .transitions import expire_claim, run_transition
from .waiting import wait_for

__all__ = [
    "CapturedSignals",
    "HeldInstance",
    "HoldingRunner",
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
    "expire_claim",
    "holding_runner",
    "registered_class",
    "run_transition",
    "wait_for",
]
