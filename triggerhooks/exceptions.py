"""Errors raised by triggerhooks, all derived from :class:`TriggerhooksError`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from class_registry import RegistryKeyError
from pluggy import PluginValidationError

__all__ = [
    "ConfigurationError",
    "ConflictError",
    "DuplicateKeyError",
    "EventDeclarationError",
    "FireKeyReusedError",
    "ForeignDatabaseError",
    "InstanceNotFoundError",
    "InvalidKwargsError",
    "InvalidPluginError",
    "InvalidSessionError",
    "InvalidSettingError",
    "InvalidStatusError",
    "InvalidTaskResultError",
    "InvalidTriggerError",
    "MaxRetriesExceeded",
    "PluginLoadWarning",
    "Problem",
    "RunnerError",
    "SignalHandlingError",
    "StorageUnavailableError",
    "TriggerhooksError",
    "UnknownKeyError",
    "UnknownReceiverError",
    "UnstorableKwargsError",
    "WorkerLostError",
    "mark_committed",
    "with_context",
]

E = TypeVar("E", bound=BaseException)


class TriggerhooksError(Exception):
    """Base class of every error raised by triggerhooks.

    ``committed`` tells a caller whether the operation's change was stored
    before the error: ``False`` (nothing was), ``True`` (it was: what failed
    came after it, a hand-off or a receiver; ``scheduled`` then names the
    instances it scheduled) or ``None`` (unknown: the store went away while
    committing). Any exception raised after a commit carries both attributes,
    an application's own or a library's too. Retrying a committed fire
    repeats it unless it was given a ``key``: see ``docs/guarantees.md``.
    """

    committed: bool | None = False
    scheduled: tuple[str, ...] = ()


def mark_committed(exc: BaseException, scheduled: Iterable[str]) -> BaseException:
    """Record on ``exc`` that it was raised after its operation's change was stored."""
    try:
        exc.committed = True  # type: ignore[attr-defined]
        exc.scheduled = tuple(scheduled)  # type: ignore[attr-defined]
    except AttributeError:  # an exception type that takes no attributes (slots)
        pass
    return exc


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in a workflow configuration, with where it was found."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class ConfigurationError(TriggerhooksError, ValueError):
    """A task configuration is invalid; ``problems`` lists every problem found.

    Nothing is stored when this is raised.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        count = len(self.problems)
        super().__init__(f"invalid configuration ({count} problem{'s' * (count != 1)}):\n{lines}")


class UnknownKeyError(TriggerhooksError, RegistryKeyError):
    """A registry has no class under the requested key; the message lists the known keys."""

    def __init__(self, registry: str, key: object, known: Iterable[object], hint: str = "") -> None:
        self.registry = registry
        self.key = key
        self.known = sorted(map(str, known))
        known_text = ", ".join(repr(k) for k in self.known) or "none"
        message = f"unknown {registry} {key!r}; known: {known_text}"
        super().__init__(message + (f" ({hint})" if hint else ""))

    def __str__(self) -> str:
        return str(self.args[0])


class DuplicateKeyError(TriggerhooksError):
    """Two different classes were registered under one key; the message names both sources."""


class StorageUnavailableError(TriggerhooksError):
    """The storage backend cannot be used (server down, file unwritable, ...).

    The message names the location with any password removed. Nothing was
    half-written: the operation either failed before its commit or committed
    atomically; ``committed`` says which when the store can tell (``None``
    when the connection broke while the commit was on its way).
    """


class ForeignDatabaseError(StorageUnavailableError):
    """A SQLite file holds tables (or a schema) of another application: triggerhooks refuses
    it and leaves it exactly as it was; the message names the file and what it found."""


class InvalidSettingError(TriggerhooksError, ValueError):
    """A setting is unusable: a storage URL or one of its options (``?ttl=``,
    ``?timeout=``), an environment variable, a limit. The message names the setting (a URL
    without its password) and what is wrong with it. Raised before anything is stored."""


class InvalidSessionError(TriggerhooksError, ValueError):
    """A session uid is not a non-empty string that UTF-8 can hold (a lone surrogate cannot
    be stored by SQLite or Redis). Raised when the storage is built, before anything is
    stored."""


class ConflictError(StorageUnavailableError):
    """Concurrent writers kept a transition from committing: SQLite's write lock stayed taken
    for the storage's ``timeout``, or a Redis storage given ``max_attempts`` lost that often
    (by default a Redis transition takes the session's turn and never gives up)."""


class UnstorableKwargsError(TriggerhooksError, TypeError):
    """Trigger kwargs, a task result or metadata cannot be stored as JSON.

    Raised before any state changes.
    """


class FireKeyReusedError(TriggerhooksError, ValueError):
    """A fire key was used again with another trigger or other kwargs than its first firing.

    A key names one firing: its repeats must be the same call.
    """


class InstanceNotFoundError(TriggerhooksError, KeyError):
    """The session has no task instance (or task) of that name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "instance not found"


class InvalidTriggerError(TriggerhooksError, ValueError):
    """A trigger name (or a fire key) is not a non-empty string that UTF-8 can hold."""


class EventDeclarationError(TriggerhooksError, ValueError):
    """An event was declared again, under the same name, with other arguments (or under the
    name of one of triggerhooks' own signals); the message shows both declarations."""


class UnknownReceiverError(TriggerhooksError, LookupError):
    """A background receiver call (a message from a broker) names a function that this
    process has not registered as a background receiver. Its module is never imported for
    it: only receivers connected with ``@on(..., background=True)`` in modules already
    imported, or in configured receiver modules, can be called by name."""


class InvalidStatusError(TriggerhooksError, ValueError):
    """An instance is not in a status that allows the requested change."""


class InvalidTaskResultError(TriggerhooksError, TypeError):
    """A task returned something other than a JSON-serializable mapping."""


class InvalidKwargsError(TriggerhooksError, ValueError):
    """A task's trigger kwargs failed validation; ``problems`` lists every problem."""

    def __init__(self, task_instance: str, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        lines = "; ".join(str(problem) for problem in self.problems)
        super().__init__(f"invalid trigger kwargs for {task_instance}: {lines}")


class MaxRetriesExceeded(TriggerhooksError):
    """A task called ``retry()`` more often than its ``max_retries`` allows."""


class RunnerError(TriggerhooksError):
    """A task runner was used in a way it does not support."""


class WorkerLostError(TriggerhooksError):
    """A running instance lost its worker (its lease expired) on as many attempts as its
    lease's ``max_attempts`` allow, so it was failed instead of started again.

    Never raised: a failed instance names it in ``metadata["exceptionType"]``
    (``task_failed`` is sent with ``exception=None``), and the instance waits
    for a replay or a skip. See :mod:`triggerhooks.core.leases`.
    """


class SignalHandlingError(TriggerhooksError):
    """Raised after every receiver ran when receivers flagged ``raise_exception`` failed.

    ``caught_exceptions`` holds every exception, in the order they were raised.
    """

    def __init__(self, caught_exceptions: Sequence[BaseException]) -> None:
        self.caught_exceptions = list(caught_exceptions)
        super().__init__(", ".join(map(exception_text, self.caught_exceptions)))


def exception_text(exc: BaseException) -> str:
    """``str(exc)``, or what Python's tracebacks show when that raises: what triggerhooks
    puts in a message or a log line, so that an application's odd exception can never
    stop what it is doing (raising receivers' errors together, storing a failure)."""
    try:
        return str(exc)
    except Exception:
        return "<exception str() failed>"


class PluginLoadWarning(UserWarning):
    """An installed plugin could not be loaded; the others still are."""


class InvalidPluginError(TriggerhooksError, PluginValidationError):
    """A plugin does not fit the hook specifications; the message names the plugin.

    Raised for an unknown (misspelled) hook name, a ``triggerhooks_*`` function
    without ``@hookimpl``, a hook argument the specification does not have, or
    a hook returning the wrong type. ``plugin`` is the offending plugin object.
    """


def with_context(exc: E, context: Mapping[str, Any]) -> E:
    """Attach a ``context`` mapping to ``exc`` and return it, for ``raise with_context(...)``.

    The context is logged with the exception by a task's logger context and
    stored in the failed instance's ``metadata["exceptionContext"]``.
    """
    existing = getattr(exc, "context", None)
    merged = {**existing, **context} if isinstance(existing, Mapping) else dict(context)
    exc.context = merged  # type: ignore[attr-defined]
    return exc
