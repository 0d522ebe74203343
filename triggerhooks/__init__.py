"""triggerhooks: run tasks when the right set of triggers has fired, in any order,
on any server; react through signals; extend through plugins.

Importing the package also wires the layers together: the lower layers never
import the upper ones, they call them through callbacks set here (the plugin
system that fills the registries, the hand-off of background receivers).
"""

from __future__ import annotations

import logging as _logging

from .core.explain import Explanation, InstanceFact, TriggerFact
from .events import ReceiverModuleError, declare_event, filter_events, on, send_event
from .events.background import hand_off as _hand_off
from .events.dispatch import use_background_hand_off as _use_background_hand_off
from .events.receivers import use_manager_class as _use_manager_class
from .exceptions import (
    ConfigurationError,
    ConflictError,
    DuplicateKeyError,
    EventDeclarationError,
    FireKeyReusedError,
    ForeignDatabaseError,
    InstanceNotFoundError,
    InvalidKwargsError,
    InvalidPluginError,
    InvalidSessionError,
    InvalidSettingError,
    InvalidStatusError,
    InvalidTaskResultError,
    InvalidTriggerError,
    MaxRetriesExceeded,
    PluginLoadWarning,
    RunnerError,
    SignalHandlingError,
    StorageUnavailableError,
    TriggerhooksError,
    UnknownKeyError,
    UnknownReceiverError,
    UnstorableKwargsError,
    WorkerLostError,
    with_context,
)
from .manager import TriggerManager
from .models import SESSION_FINALIZED, Firing, TaskConfig, TaskInstance, TaskStatus
from .plugins import hookimpl
from .plugins.loading import connect as _connect_plugins
from .registries import storage_backends, task_runners, trigger_managers, trigger_tasks
from .runners import InlineTaskRunner, TaskRunner, ThreadingTaskRunner
from .sessions import SessionReferenceError
from .storages import (
    MemoryStorageBackend,
    PostgresStorageBackend,
    RedisStorageBackend,
    SqliteStorageBackend,
    StorageBackend,
    open_storage,
)
from .task import Retry, StatusChange, TaskContext, TriggerTask, trigger_task
from .testing.signals import capture_signals, connected

# A library logs through its own loggers and prints nothing unless the application
# configures logging (without any handler, Python's last resort would print WARNING and up).
_logging.getLogger(__name__).addHandler(_logging.NullHandler())
_connect_plugins()
_use_background_hand_off(_hand_off)
_use_manager_class(TriggerManager)

__version__ = "0.1.0"

__all__ = [
    "SESSION_FINALIZED",
    "ConfigurationError",
    "ConflictError",
    "DuplicateKeyError",
    "EventDeclarationError",
    "Explanation",
    "FireKeyReusedError",
    "Firing",
    "ForeignDatabaseError",
    "InlineTaskRunner",
    "InstanceFact",
    "InstanceNotFoundError",
    "InvalidKwargsError",
    "InvalidPluginError",
    "InvalidSessionError",
    "InvalidSettingError",
    "InvalidStatusError",
    "InvalidTaskResultError",
    "InvalidTriggerError",
    "MaxRetriesExceeded",
    "MemoryStorageBackend",
    "PluginLoadWarning",
    "PostgresStorageBackend",
    "ReceiverModuleError",
    "RedisStorageBackend",
    "Retry",
    "RunnerError",
    "SessionReferenceError",
    "SignalHandlingError",
    "SqliteStorageBackend",
    "StatusChange",
    "StorageBackend",
    "StorageUnavailableError",
    "TaskConfig",
    "TaskContext",
    "TaskInstance",
    "TaskRunner",
    "TaskStatus",
    "ThreadingTaskRunner",
    "TriggerFact",
    "TriggerManager",
    "TriggerTask",
    "TriggerhooksError",
    "UnknownKeyError",
    "UnknownReceiverError",
    "UnstorableKwargsError",
    "WorkerLostError",
    "__version__",
    "capture_signals",
    "connected",
    "declare_event",
    "filter_events",
    "hookimpl",
    "on",
    "open_storage",
    "send_event",
    "storage_backends",
    "task_runners",
    "trigger_managers",
    "trigger_task",
    "trigger_tasks",
    "with_context",
]
