"""Everything a plugin needs, in one module: ``from triggerhooks.ext import ...``.

A plugin package imports from here and from the top-level ``triggerhooks``
package only, so the internal layout can change without breaking plugins (a
test holds the bundled plugins to that). Grouped by what the plugin does:

* every plugin: ``hookimpl``, ``Registry`` (what the registration hooks get)
  and the plugin system's API (``list_plugins``, ``registered``, ...);
* a storage backend: ``StorageBackend``, the core types its ``transact``
  handles (``Plan``, ``SessionView``, ``Changes``, ``Commit``, ...) and
  ``transition`` (one step of the rules in a storage transaction);
* a task runner: ``TaskRunner``; for other processes ``session_reference`` /
  ``open_session``, ``open_reference``, ``BackgroundCall`` and the leases
  (``Lease``, ``Claim``, ``claim_of``, ``Heartbeat``);
* receivers: the signals (``task_completed``, ...), their payload types
  (``TaskCompleted``, ...) and ``OrderedSignal`` for a plugin's own events;
* signals of another library (Django's) for ``@on`` and ``send_event``:
  ``SignalAdapter``, ``register_signal_adapter`` / ``unregister_signal_adapter``,
  ``log_receiver_failure`` and ``ANY`` (every sender);
* tests: ``wait_for``, ``capture_signals``, ``connected``;
* pages that show a session (an admin): ``WorkflowGraph``, ``to_dot`` and
  ``render_image`` (which raises a ``TriggerhooksError`` when Graphviz cannot draw).

The command line is public too, as ``triggerhooks.cli.cli`` (a click group a
plugin may run in-process); it sits above this module, so it is not re-exported.
"""

from __future__ import annotations

from .core.leases import DEFAULT_MAX_ATTEMPTS, Claim, Heartbeat, Lease, claim_of
from .core.recovery import Recovery, Stuck
from .core.rules import Transition, transition
from .core.types import Changes, Commit, Compute, Notice, Plan, SessionView, TaskState, build_index
from .events import ANY
from .events.adapters import (
    SignalAdapter,
    register_signal_adapter,
    signal_adapters,
    unregister_signal_adapter,
)
from .events.background import BackgroundCall
from .events.dispatch import log_receiver_failure
from .graph import WorkflowGraph, render_image, to_dot
from .manager import TriggerManager
from .models import instance_name, split_instance_name, utcnow
from .plugins import (
    PluginInfo,
    failed_plugins,
    hookimpl,
    list_plugins,
    register,
    registered,
    unregister,
)
from .registries import Registry
from .runners import TaskRunner
from .serialization import JsonDict, dotted_name, dumps, loads
from .sessions import SessionReferenceError, open_session, session_reference
from .signals import (
    ConfigurationUpdated,
    InstanceAbandoned,
    OrderedSignal,
    PostFire,
    PostReplay,
    PostSkip,
    PreFire,
    PreReplay,
    PreSkip,
    SessionFinalized,
    SessionPayload,
    TaskCompleted,
    TaskFailed,
    TaskPayload,
    TaskScheduled,
    TaskStarted,
    configuration_updated,
    instance_abandoned,
    post_fire,
    post_replay,
    post_skip,
    pre_fire,
    pre_replay,
    pre_skip,
    session_finalized,
    task_completed,
    task_failed,
    task_scheduled,
    task_started,
)
from .storages import STORAGE_URL_ENV, MemoryStore, StorageBackend, open_reference, redact_url
from .task import TaskContext, TriggerTask
from .testing import (
    HeldInstance,
    HoldingRunner,
    capture_signals,
    connected,
    expire_claim,
    holding_runner,
    registered_class,
    run_transition,
    wait_for,
)

__all__ = [
    "ANY",
    "DEFAULT_MAX_ATTEMPTS",
    "STORAGE_URL_ENV",
    "BackgroundCall",
    "Changes",
    "Claim",
    "Commit",
    "Compute",
    "ConfigurationUpdated",
    "Heartbeat",
    "HeldInstance",
    "HoldingRunner",
    "InstanceAbandoned",
    "JsonDict",
    "Lease",
    "MemoryStore",
    "Notice",
    "OrderedSignal",
    "Plan",
    "PluginInfo",
    "PostFire",
    "PostReplay",
    "PostSkip",
    "PreFire",
    "PreReplay",
    "PreSkip",
    "Recovery",
    "Registry",
    "SessionFinalized",
    "SessionPayload",
    "SessionReferenceError",
    "SessionView",
    "SignalAdapter",
    "StorageBackend",
    "Stuck",
    "TaskCompleted",
    "TaskContext",
    "TaskFailed",
    "TaskPayload",
    "TaskRunner",
    "TaskScheduled",
    "TaskStarted",
    "TaskState",
    "Transition",
    "TriggerManager",
    "TriggerTask",
    "WorkflowGraph",
    "build_index",
    "capture_signals",
    "claim_of",
    "configuration_updated",
    "connected",
    "dotted_name",
    "dumps",
    "expire_claim",
    "failed_plugins",
    "holding_runner",
    "hookimpl",
    "instance_abandoned",
    "instance_name",
    "list_plugins",
    "loads",
    "log_receiver_failure",
    "open_reference",
    "open_session",
    "post_fire",
    "post_replay",
    "post_skip",
    "pre_fire",
    "pre_replay",
    "pre_skip",
    "redact_url",
    "register",
    "register_signal_adapter",
    "registered",
    "registered_class",
    "render_image",
    "run_transition",
    "session_finalized",
    "session_reference",
    "signal_adapters",
    "split_instance_name",
    "task_completed",
    "task_failed",
    "task_scheduled",
    "task_started",
    "to_dot",
    "transition",
    "unregister",
    "unregister_signal_adapter",
    "utcnow",
    "wait_for",
]
