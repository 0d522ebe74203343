"""What follows a commit, in the documented order: the signals of what happened to
instances, ``post_fire`` (and ``session_finalized``), the manager's hooks,
finalization, then the hand-off of scheduled instances to their runners.

A receiver's error never stops the steps after it: the errors of
``raise_exception`` receivers are collected and raised together at the end, once
every scheduled instance was handed off. Nor does an error of a subclass's hook or
of finalization: the first is raised at the end instead, so that no scheduled
instance is left without its hand-off. Nothing here reads the whole session:
each step works from what the commit already knows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from blinker import Signal

from .. import signals
from ..events.dispatch import send_event
from ..exceptions import SignalHandlingError, mark_committed
from ..models import SESSION_FINALIZED, TaskConfig, TaskInstance
from ..registries import trigger_tasks
from ..serialization import JsonDict, loads
from .recovery import still_stuck
from .types import Commit, Notice

if TYPE_CHECKING:
    from ..manager import TriggerManager

__all__ = ["Announcement", "Fired", "after_commit", "config_in", "emit", "send_pre_fire",
           "sender_of"]

log = logging.getLogger("triggerhooks.manager")

Fired = tuple[str, Mapping[str, Any]]
"""A stored firing: the trigger's name and its kwargs as stored (JSON types)."""

Announcement = tuple[Signal, Any, JsonDict]
"""A signal to send after the commit: the signal, its sender and its own arguments."""

Scheduled = list[tuple[TaskInstance, TaskConfig, float]]

_NOTICE_SIGNALS: dict[str, Signal] = {
    "scheduled": signals.task_scheduled,
    "started": signals.task_started,
    "completed": signals.task_completed,
    "failed": signals.task_failed,
    "abandoned": signals.instance_abandoned,
}


def sender_of(config: TaskConfig | None) -> Any:
    """The sender of a task-level signal: the task class (None if it is not registered)."""
    if config is None:
        return None
    try:
        return trigger_tasks.get_class(config.run)
    except KeyError:
        return None


def config_in(commit: Commit, name: str) -> TaskConfig | None:
    """The configuration of ``name``'s task, as the transition that changed it read it."""
    return next((notice.config for notice in commit.changes.notices
                 if notice.instance.name == name and notice.config is not None), None)


def emit(manager: TriggerManager, signal: Signal, sender: Any, **kwargs: Any) -> None:
    """Send ``signal`` with the session's arguments, if anything listens."""
    if signal.receivers:
        send_event(signal, sender, manager=manager, session_uid=manager.storage.uid, **kwargs)


def send_pre_fire(manager: TriggerManager, trigger_name: str,
                  trigger_kwargs: Mapping[str, Any] | bytes) -> None:
    """``pre_fire`` for a firing about to be stored; JSON kwargs are decoded only for receivers."""
    if signals.pre_fire.receivers:
        kwargs = loads(trigger_kwargs) if isinstance(trigger_kwargs, bytes) else trigger_kwargs
        send_event(signals.pre_fire, type(manager), manager=manager,
                   session_uid=manager.storage.uid, trigger_name=trigger_name,
                   trigger_kwargs=kwargs)


class _Errors:
    """Receiver errors collected across the steps that follow one commit."""

    __slots__ = ("caught", "failures")

    def __init__(self) -> None:
        self.caught: list[BaseException] = []
        self.failures: list[Exception] = []
        """Errors of the steps run with :meth:`keep`, in order."""

    def run(self, step: Callable[[], None]) -> None:
        try:
            step()
        except SignalHandlingError as exc:
            self.caught.extend(exc.caught_exceptions)

    def keep(self, step: Callable[[], None]) -> None:
        """Run a step that may fail by itself (a hook, finalization): its error is raised
        once the steps after it ran, as a failed hand-off is."""
        try:
            self.run(step)
        except Exception as exc:
            self.failures.append(exc)


def _announce(manager: TriggerManager, signal: Signal, notice: Notice) -> None:
    emit(manager, signal, sender_of(notice.config), task_instance=notice.instance,
         **notice.extra)


def _report_fire(manager: TriggerManager, fired: Fired, scheduled: list[TaskInstance],
                 errors: _Errors) -> None:
    """``post_fire``, ``session_finalized`` for that trigger, then the ``_post_fire`` hook."""
    trigger_name, trigger_kwargs = fired
    if signals.post_fire.receivers:
        errors.run(partial(emit, manager, signals.post_fire, type(manager),
                           trigger_name=trigger_name, trigger_kwargs=trigger_kwargs,
                           tasks_scheduled=scheduled))
    if trigger_name == SESSION_FINALIZED and signals.session_finalized.receivers:
        errors.run(partial(emit, manager, signals.session_finalized, type(manager)))
    errors.keep(partial(manager._post_fire, trigger_name, scheduled))


def finalize(manager: TriggerManager, commit: Commit) -> None:
    """Fire ``sessionFinalized``: every counted task is resolved (and, with the manager's
    ``finalize_log_level``, no log at that level is unresolved). The rules store it at
    most once per session; a losing concurrent attempt changes nothing.

    Unresolved logs are looked up only after a commit that changed some task's state:
    one that changed none (a firing no task waits for) cannot have unblocked the session,
    so a session held back by its logs costs a firing nothing."""
    level = manager.finalize_log_level
    if level is not None and (
            not (commit.changes.states or commit.changes.configs is not None)
            or manager.storage.get_instances_with_unresolved_logs(level)):
        return
    # Not asked first whether the session is finalized already (a subclass hook, the
    # cookbook recipe, may have got there first): that would cost every finalization a
    # round trip, and a repeated sessionFinalized is ignored, without signals.
    manager.fire(SESSION_FINALIZED)


def _by_runner(manager: TriggerManager, scheduled: Scheduled) -> dict[str, list[tuple[str, float]]]:
    """Runner name -> the scheduled ``(instance, countdown)`` pairs it takes, in order."""
    groups: dict[str, list[tuple[str, float]]] = {}
    for instance, config, countdown in scheduled:
        groups.setdefault(config.using or manager.task_runner_name, []).append(
            (instance.name, countdown))
    return groups


def _recovered(manager: TriggerManager, commit: Commit) -> Scheduled:
    """The stuck instances a transition found and stamped, that are still to run after it."""
    found: Scheduled = []
    scheduled = {instance.name for instance, _, _ in commit.changes.schedule}
    for instance, config in commit.changes.recover:
        current = commit.changes.instances.get(instance.name, instance)
        if current.name not in scheduled and still_stuck(current, config):
            log.warning("%s: instance %s was stuck (%s); handing it to its runner again",
                        manager.storage.uid, instance.name, current.status.value)
            found.append((current, config, 0.0))
    return found


def _give(manager: TriggerManager, runner: str, instances: list[tuple[str, float]]) -> None:
    manager.task_runner(runner).schedule_many(manager, instances)


def _hand_off(manager: TriggerManager, scheduled: Scheduled, errors: _Errors) -> list[Exception]:
    """Give each runner its instances; one failed hand-off must not keep the others back."""
    failures: list[Exception] = []
    for key, instances in _by_runner(manager, scheduled).items():
        try:
            errors.run(partial(_give, manager, key, instances))
        except Exception as exc:
            failures.append(exc)
    return failures


def _raise(manager: TriggerManager, failures: list[Exception], errors: _Errors) -> None:
    """The first failure of a hook, finalization or hand-off (the others logged), else
    every receiver error together."""
    if failures:
        if errors.caught:
            failures.append(SignalHandlingError(errors.caught))
        for extra in failures[1:]:
            log.error("%s: after a change, %s", manager.storage.uid, extra, exc_info=extra)
        raise failures[0]
    if errors.caught:
        raise SignalHandlingError(errors.caught)


def after_commit(manager: TriggerManager, commit: Commit, *, fired: Fired | None = None,
                 then: Callable[[], None] | None = None,
                 announce: Iterable[Announcement] = ()) -> None:
    """Everything that follows ``commit``, in order (see the module's docstring).

    ``fired`` is the firing the commit stored (none when the rules ignored it), ``then``
    a step of the caller's own (the replay and skip signals and hooks) and ``announce``
    signals to send after the instance signals.
    """
    try:
        _follow(manager, commit, fired, then, announce)
    except Exception as exc:
        mark_committed(exc, [instance.name for instance, _, _ in commit.changes.schedule])
        raise


def _follow(manager: TriggerManager, commit: Commit, fired: Fired | None,
            then: Callable[[], None] | None, announce: Iterable[Announcement]) -> None:
    changes = commit.changes
    errors = _Errors()
    for notice in changes.notices:
        signal = _NOTICE_SIGNALS.get(notice.kind)
        if signal is not None and signal.receivers:  # the sender is looked up only for them
            errors.run(partial(_announce, manager, signal, notice))
    for signal, sender, kwargs in announce:
        errors.run(partial(emit, manager, signal, sender, **kwargs))
    if fired is not None and changes.result is not False:
        _report_fire(manager, fired, [instance for instance, _, _ in changes.schedule], errors)
    if then is not None:
        errors.keep(then)
    if commit.ready_to_finalize:
        errors.keep(partial(finalize, manager, commit))
    handing = changes.schedule
    if changes.recover:
        handing = [*handing, *_recovered(manager, commit)]
    failures = errors.failures + (_hand_off(manager, handing, errors) if handing else [])
    if failures or errors.caught:
        _raise(manager, failures, errors)
