"""Changes to instances made by hand or by a task's outcome: a status set, metadata
merged, logs marked resolved, a failed instance replayed or skipped.

Each checks and encodes its input first (raising before anything is stored),
commits one transition, then runs what follows the commit (:mod:`.effects`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import signals
from ..exceptions import UnstorableKwargsError
from ..models import TaskInstance, TaskStatus, parse_status, split_instance_name
from ..serialization import JsonDict, dumps_mapping, loads
from .effects import after_commit, config_in, emit, send_pre_fire, sender_of
from .rules import Transition, transition
from .types import Commit, Plan

if TYPE_CHECKING:
    from ..manager import TriggerManager

__all__ = ["OWN_METADATA", "StatusUpdate", "commit_status", "decode_mapping", "decode_metadata",
           "decode_replacement", "prepare_status", "replay", "skip"]

OWN_METADATA = ("timestamps", "claim", "due", "recovered")
"""Metadata keys triggerhooks keeps its bookkeeping in, and reads back: when each status was
reached, the lease of a running instance, when a scheduled one is due, its recoveries."""


def decode_mapping(value: Mapping[str, Any] | None, what: str) -> JsonDict:
    """``value`` as it will be stored (JSON types); raises before any change if it cannot be."""
    decoded: JsonDict = loads(dumps_mapping(value, what))
    return decoded


def decode_metadata(value: Mapping[str, Any] | None, what: str) -> JsonDict:
    """Metadata given by hand (or by a task's ``StatusChange``) as it will be stored; raises
    before any change if it cannot be, or if it would overwrite triggerhooks' bookkeeping,
    which it reads back (recoveries, claims and status changes of the instance need it)."""
    meta = decode_mapping(value, what)
    own = [key for key in OWN_METADATA if key in meta]
    if own:
        raise UnstorableKwargsError(
            f"{what} cannot be stored: {', '.join(map(repr, own))} "
            f"{'is' if len(own) == 1 else 'are'} triggerhooks' own (status times, lease and "
            "recovery bookkeeping); put your metadata under other keys")
    return meta


def decode_replacement(value: Mapping[str, Any], what: str) -> JsonDict:
    """Replacement kwargs (trigger name -> kwargs) as they will be stored; raises before any
    change unless each trigger's kwargs are a mapping (``None`` meaning ``{}``, as for
    ``fire``), so that a copy gets what a firing could have given it."""
    decoded = decode_mapping(value, what)
    for trigger, kwargs in decoded.items():
        if kwargs is None:
            decoded[trigger] = {}
        elif not isinstance(kwargs, dict):
            raise UnstorableKwargsError(
                f"{what}: the kwargs of trigger {trigger!r} must be a mapping (or None), "
                f"not {type(kwargs).__name__}; give trigger name -> kwargs")
    return decoded


class StatusUpdate(NamedTuple):
    """A checked status update, ready to commit."""

    status: TaskStatus
    metadata: JsonDict | None
    cascade: bool
    cascade_kwargs: bytes
    task_name: str
    force: bool = False
    """Set it even on a running instance whose lease is live (its worker may still end it)."""


def prepare_status(manager: TriggerManager, name: str, status: str,
                   metadata: Mapping[str, Any] | None, cascade: bool,
                   cascade_kwargs: Mapping[str, Any] | None) -> StatusUpdate:
    """Check and encode a status update; raises before anything is stored."""
    new_status = parse_status(status)
    meta = decode_metadata(metadata, f"metadata of {name}") if metadata else None
    raw = dumps_mapping(cascade_kwargs, f"cascade kwargs of {name}")
    task_name = split_instance_name(name)[0]
    if cascade:
        send_pre_fire(manager, task_name, raw)
    return StatusUpdate(new_status, meta, cascade, raw, task_name)


def commit_status(manager: TriggerManager, name: str, update: StatusUpdate,
                  level: int | None = None, token: str | None = None) -> TaskInstance:
    """Store a prepared status update; with ``token``, only while that claim holds."""
    commit = manager.storage.transact(
        Plan(trigger=update.task_name if update.cascade else None, instances=(name,)),
        transition(lambda step: step.set_status(name, update.status, update.metadata,
                                                update.cascade, update.cascade_kwargs, level,
                                                token, update.force),
                   None if token is not None else manager.claim_grace_seconds))
    if name not in commit.changes.instances:
        unchanged: TaskInstance = commit.changes.result
        return unchanged  # the claim behind ``token`` was taken over: nothing was stored
    fired = (update.task_name, loads(update.cascade_kwargs)) if update.cascade else None
    after_commit(manager, commit, fired=fired)
    return commit.changes.instances[name]


def _peek_sender(manager: TriggerManager, name: str) -> tuple[TaskInstance, Any]:
    """The stored instance and its task's class, for a signal sent before a change.
    Reads that one instance and its task, never the whole configuration."""
    def read(step: Transition) -> tuple[TaskInstance, Any]:
        instance = step.instance(name)
        return instance, sender_of(step.view.task(instance.task_name))
    found: tuple[TaskInstance, Any] = manager.storage.transact(
        Plan(instances=(name,)), transition(read)).changes.result
    return found


def _announce_replay(manager: TriggerManager, commit: Commit, copy: TaskInstance,
                     parent: str) -> None:
    try:
        emit(manager, signals.post_replay, sender_of(config_in(commit, copy.name)),
             task_instance=copy, parent=parent)
    finally:  # the hook runs even when a receiver raised
        manager._post_replay(copy)


def replay(manager: TriggerManager, name: str, replacement: JsonDict | None,
           countdown: float = 0.0, metadata: JsonDict | None = None,
           failure: tuple[JsonDict, int, BaseException | None, str | None] | None = None,
           *, merge: bool = False) -> tuple[Commit, TaskInstance | None]:
    """Mark ``name`` replayed and schedule a copy; ``failure`` (metadata, log level,
    exception, claim token) first fails the running instance, as a task's retry does.
    With ``merge``, ``replacement`` replaces the kwargs of the triggers it names only."""
    def compute(step: Transition) -> TaskInstance | None:
        if failure is not None and step.fail(name, *failure) is None:
            return None
        kwargs = replacement
        if merge and replacement is not None:  # read in the transaction: the stored kwargs
            kwargs = {**step.instance(name).kwargs, **replacement}
        return step.replay(name, kwargs, countdown, metadata)

    grace = manager.claim_grace_seconds if failure is None else None  # by hand, not a retry
    commit = manager.storage.transact(Plan(instances=(name,)), transition(compute, grace))
    copy: TaskInstance | None = commit.changes.result
    after_commit(manager, commit, then=None if copy is None
                 else lambda: _announce_replay(manager, commit, copy, name))
    return commit, copy


def replay_failed(manager: TriggerManager, name: str,
                  replacement_kwargs: Mapping[str, Any] | None, merge: bool = False) -> TaskInstance:
    """``pre_replay``, then :func:`replay` of a failed instance; returns the copy."""
    replacement = None
    if replacement_kwargs is not None:
        replacement = decode_replacement(replacement_kwargs, f"replacement kwargs of {name}")
    if signals.pre_replay.receivers:
        current, sender = _peek_sender(manager, name)
        emit(manager, signals.pre_replay, sender, task_instance=current)
    copy = replay(manager, name, replacement, merge=merge)[1]
    assert copy is not None
    return copy


def skip(manager: TriggerManager, name: str, cascade: bool,
         result: Mapping[str, Any] | None) -> TaskInstance:
    """Mark a failed instance skipped; with ``cascade``, fire its task's name with ``result``."""
    raw = dumps_mapping(result, f"result for skipped {name}")
    value = loads(raw)
    task_name = split_instance_name(name)[0]
    if signals.pre_skip.receivers:
        current, sender = _peek_sender(manager, name)
        emit(manager, signals.pre_skip, sender, task_instance=current, cascade=cascade)
    if cascade:
        send_pre_fire(manager, task_name, value)
    commit = manager.storage.transact(Plan(trigger=task_name if cascade else None,
                                           instances=(name,)),
                                      transition(lambda step: step.skip(name, cascade, raw, value),
                                                 manager.claim_grace_seconds))
    skipped: TaskInstance = commit.changes.result

    def announce() -> None:
        try:
            emit(manager, signals.post_skip, sender_of(config_in(commit, skipped.name)),
                 task_instance=skipped, cascade=cascade)
        finally:  # the hook runs even when a receiver raised
            manager._post_skip(skipped, cascade)

    after_commit(manager, commit, fired=(task_name, value) if cascade else None, then=announce)
    return skipped
