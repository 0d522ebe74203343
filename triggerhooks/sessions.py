"""Session references: one JSON document from which another process rebuilds a manager.

A worker receives ``{"manager": key, "storage": storage.reference(), ...}``
and gets a manager of the same class, on the same session, choosing the same
runners, through the registries (``trigger_managers``, ``storage_backends``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .exceptions import TriggerhooksError
from .registries import trigger_managers
from .serialization import JsonDict, dotted_name, safe_text
from .storages import open_reference

if TYPE_CHECKING:
    from .manager import TriggerManager

__all__ = ["SessionReferenceError", "open_session", "session_reference"]


class SessionReferenceError(TriggerhooksError):
    """A session cannot be described for (or rebuilt in) another process; the message says why."""


def _manager_key(cls: type[TriggerManager]) -> str:
    """The key ``cls`` is registered under in ``trigger_managers`` (its own class, not a parent)."""
    key = trigger_managers.key_of(cls)
    if key is not None:
        return str(key)
    raise SessionReferenceError(
        f"manager class {dotted_name(cls)} is not registered, so another "
        "process cannot rebuild it: register it with trigger_managers.register('some-key') "
        "(or through a plugin), in a module the workers import too")


def session_reference(manager: TriggerManager) -> JsonDict:
    """Describe ``manager``'s session as JSON: manager key, storage reference, options."""
    if manager.storage.name == "memory":
        raise SessionReferenceError(
            f"session {manager.storage.uid!r} lives in this process's memory; another process "
            "cannot reach it: use a shared storage (redis://, sqlite:///path)")
    reference: JsonDict = {
        "manager": _manager_key(type(manager)),
        "storage": manager.storage.reference(),
        "taskRunner": manager.task_runner_name,
    }
    if manager.finalize_log_level != type(manager).finalize_log_level:
        reference["finalizeLogLevel"] = manager.finalize_log_level
    return reference


def open_session(reference: JsonDict) -> TriggerManager:
    """Rebuild the manager that :func:`session_reference` described.

    A reference comes from a message (a broker's): one that is not shaped as
    :func:`session_reference` makes it raises :class:`SessionReferenceError`, one that
    names what this process does not know an error of its own (an unknown key, an
    unusable setting)."""
    if not (isinstance(reference, dict) and isinstance(reference.get("manager"), str)
            and isinstance(reference.get("storage"), dict)
            and isinstance(reference["storage"].get("backend"), str)):
        raise SessionReferenceError(f"malformed session reference: {safe_text(repr(reference))[:200]}")
    try:
        storage = open_reference(reference["storage"])
        options: dict[str, Any] = {"task_runner": reference.get("taskRunner")}
        if "finalizeLogLevel" in reference:
            options["finalize_log_level"] = reference["finalizeLogLevel"]
        return trigger_managers.get(reference["manager"], storage, **options)
    except TriggerhooksError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise SessionReferenceError(
            f"malformed session reference: {type(exc).__name__}: {safe_text(str(exc))[:200]}"
        ) from None
