"""triggerhooks: run tasks when the right set of triggers has fired, in any order,
on any server; react through signals; extend through plugins."""

from __future__ import annotations

from .events import (
    ReceiverModuleError,
    capture_signals,
    connected,
    filter_events,
    on,
    send_event,
)
from .exceptions import (
    ConfigurationError,
    ConflictError,
    DuplicateKeyError,
    InstanceNotFoundError,
    InvalidKwargsError,
    InvalidPluginError,
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
    UnstorableKwargsError,
    WorkerLostError,
    with_context,
)
from .manager import TriggerManager, trigger_managers
from .models import SESSION_FINALIZED, TaskConfig, TaskInstance, TaskStatus
from .plugins import hookimpl
from .runners import InlineTaskRunner, TaskRunner, ThreadingTaskRunner, task_runners
from .sessions import SessionReferenceError
from .storages import (
    MemoryStorageBackend,
    RedisStorageBackend,
    SqliteStorageBackend,
    StorageBackend,
    open_storage,
    storage_backends,
)
from .task import Retry, StatusChange, TaskContext, TriggerTask, trigger_task, trigger_tasks

__version__ = "0.1.0"

__all__ = [
    "SESSION_FINALIZED",
    "ConfigurationError",
    "ConflictError",
    "DuplicateKeyError",
    "InlineTaskRunner",
    "InstanceNotFoundError",
    "InvalidKwargsError",
    "InvalidPluginError",
    "InvalidStatusError",
    "InvalidTaskResultError",
    "InvalidTriggerError",
    "MaxRetriesExceeded",
    "MemoryStorageBackend",
    "PluginLoadWarning",
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
    "TriggerManager",
    "TriggerTask",
    "TriggerhooksError",
    "UnknownKeyError",
    "UnstorableKwargsError",
    "WorkerLostError",
    "__version__",
    "capture_signals",
    "connected",
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
