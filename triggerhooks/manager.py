"""The trigger manager: the public face of a session."""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, ClassVar, NamedTuple

from blinker import Signal

from . import signals
from .config import parse_configuration
from .core.leases import DEFAULT_MAX_ATTEMPTS, Heartbeat, Lease
from .core.rules import Transition, transition
from .core.types import Commit, Notice, Plan
from .events import load_receiver_modules, send_event
from .exceptions import (
    InvalidTaskResultError,
    InvalidTriggerError,
    SignalHandlingError,
    UnknownKeyError,
    UnstorableKwargsError,
)
from .models import (
    SESSION_FINALIZED,
    TaskConfig,
    TaskInstance,
    TaskStatus,
    parse_status,
    split_instance_name,
)
from .registries import trigger_managers
from .runners import TaskRunner, task_runners
from .serialization import JsonDict, dumps, dumps_mapping, loads
from .serialization import dotted_name as _dotted
from .storages.base import StorageBackend
from .task import Retry, StatusChange, TaskContext, TriggerTask, trigger_tasks

__all__ = ["TASK_RUNNER_ENV", "TriggerManager", "trigger_managers"]

log = logging.getLogger(__name__)

TASK_RUNNER_ENV = "TRIGGERHOOKS_TASK_RUNNER"


InstanceRef = str | TaskInstance

_NOTICE_SIGNALS: dict[str, Signal] = {
    "scheduled": signals.task_scheduled,
    "started": signals.task_started,
    "completed": signals.task_completed,
    "failed": signals.task_failed,
    "abandoned": signals.instance_abandoned,
}


def _instance_name(instance: InstanceRef) -> str:
    name = instance.name if isinstance(instance, TaskInstance) else instance
    split_instance_name(name)
    return name


def _failure_metadata(exc: BaseException, where: TracebackType | None = None) -> JsonDict:
    """What a failed instance stores; ``where`` is the traceback to show for an exception
    that was never raised (``retry(exc=ValueError(...))``)."""
    context = getattr(exc, "context", None)
    if context is not None:
        try:
            context = loads(dumps(context))
        except UnstorableKwargsError:
            context = {"repr": repr(context)}
    return {
        "exceptionType": _dotted(type(exc)),
        "exceptionInfo": "".join(traceback.format_exception(
            type(exc), exc, exc.__traceback__ or where)),
        "exceptionContext": context,
    }


class _StatusUpdate(NamedTuple):
    status: TaskStatus
    metadata: JsonDict | None
    cascade: bool
    cascade_kwargs: bytes
    task_name: str


def _sender_of(config: TaskConfig | None) -> Any:
    """The sender of a task-level signal: the task class (None if it is not registered)."""
    if config is None:
        return None
    try:
        return trigger_tasks.get_class(config.run)
    except KeyError:
        return None


def _config_in(commit: Commit, name: str) -> TaskConfig | None:
    """The configuration of ``name``'s task, as the transition that changed it read it."""
    return next((notice.config for notice in commit.changes.notices
                 if notice.instance.name == name and notice.config is not None), None)


class TriggerManager:
    """Fires triggers into one session (``storage``) and runs the tasks that become ready.

    Subclass to override the hooks ``_post_fire``, ``_post_replay`` and
    ``_post_skip``; register a subclass with ``trigger_managers.register(key)``.
    """

    name: ClassVar[str] = "default"
    default_task_runner_name: ClassVar[str | None] = None
    """Runner for tasks without ``using``; falls back to ``$TRIGGERHOOKS_TASK_RUNNER``, then ``inline``."""
    finalize_log_level: int | None = None
    """When set (``logging.WARNING`` or above), a session is finalized only once no instance
    has unresolved logs at this level or above (see ``mark_instance_logs_resolved``)."""
    TRIGGER_SESSION_FINALIZED: ClassVar[str] = SESSION_FINALIZED

    def __init__(self, storage: StorageBackend, *, task_runner: str | None = None,
                 finalize_log_level: int | None = None) -> None:
        self.storage = storage
        runner = (task_runner or type(self).default_task_runner_name
                  or os.environ.get(TASK_RUNNER_ENV) or "inline")
        if runner not in task_runners:
            raise UnknownKeyError("task runner", runner, task_runners.keys())
        self.task_runner_name: str = runner
        """The runner of tasks without ``using``."""
        if finalize_log_level is not None:
            self.finalize_log_level = finalize_log_level
        if self.finalize_log_level is not None and self.finalize_log_level < logging.WARNING:
            raise ValueError(
                f"finalize_log_level must be logging.WARNING ({logging.WARNING}) or above, not "
                f"{self.finalize_log_level!r}: logs below WARNING are not tracked as unresolved")
        self._runners: dict[str, TaskRunner] = {}
        load_receiver_modules()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} session={self.storage.uid!r}>"

    # -- configuration -------------------------------------------------------------------

    def update_configuration(self, configuration: Mapping[str, Any]) -> None:
        """Add or replace tasks. Every problem is reported at once and nothing is stored."""
        configs = parse_configuration(
            configuration, known_tasks=set(map(str, trigger_tasks.keys())),
            known_runners=set(map(str, task_runners.keys())))
        commit = self.storage.transact(Plan(full=True), transition(lambda step: step.configure(configs)))
        self._after(commit, announce=[(signals.configuration_updated, type(self),
                                       {"tasks": configs})])

    # -- firing --------------------------------------------------------------------------

    def fire(self, trigger_name: str, trigger_kwargs: Mapping[str, Any] | None = None) -> None:
        """Record a trigger and run every task it makes ready (in any order, any process).

        Raises :class:`UnstorableKwargsError` before any change if the kwargs
        are not JSON-serializable. A task's exception is never raised here.
        """
        if not isinstance(trigger_name, str) or not trigger_name:
            raise InvalidTriggerError(
                f"a trigger name must be a non-empty string, not {trigger_name!r}")
        raw = dumps_mapping(trigger_kwargs, f"kwargs of trigger {trigger_name!r}")
        # Receivers get the kwargs as stored (JSON types), as tasks do; built only for them.
        kwargs = loads(raw) if signals.pre_fire.receivers or signals.post_fire.receivers else {}
        if signals.pre_fire.receivers:
            if trigger_name == SESSION_FINALIZED and self.storage.is_finalized:
                return  # fired once per session; later fires are ignored, without signals
            send_event(signals.pre_fire, type(self), manager=self, session_uid=self.storage.uid,
                       trigger_name=trigger_name, trigger_kwargs=kwargs)
        commit = self.storage.transact(Plan(trigger=trigger_name),
                                       transition(lambda step: step.fire(trigger_name, raw)))
        self._after(commit, fired=(trigger_name, kwargs))

    # -- running (called by task runners) ----------------------------------------------------

    def execute(self, instance: InstanceRef, *, lease: float | None = None,
                worker: str | None = None,
                max_attempts: int | None = DEFAULT_MAX_ATTEMPTS) -> TaskInstance | None:
        """Run one scheduled instance: claim it, run its task, store the outcome.

        Returns the instance as stored at the end, or ``None`` when it was not
        ``scheduled`` (already taken by another worker, abandoned, ...).

        With ``lease`` (seconds), the claim is recorded with ``worker`` in
        ``metadata["claim"]`` and renewed by a heartbeat while the task runs;
        a ``running`` instance whose lease expired (its worker died) is then
        taken over instead of ignored — unless it was started ``max_attempts``
        times already (``None``: no limit): it then ends ``failed`` with a
        :class:`~triggerhooks.exceptions.WorkerLostError`, which is returned.
        See :mod:`triggerhooks.core.leases`.
        """
        name = _instance_name(instance)
        held = None if lease is None else Lease(lease, worker, max_attempts=max_attempts)
        commit = self.storage.transact(Plan(instances=(name,)),
                                       transition(lambda step: step.claim(name, held)))
        claimed = commit.changes.result
        if claimed is None:
            lost = commit.changes.instances.get(name)
            if lost is not None:  # its workers kept dying: failed rather than taken over again
                log.error("%s: instance %s: %s", self.storage.uid, name,
                          lost.metadata["exceptionInfo"].strip())
                self._after(commit)
                return lost
            log.info("%s: instance %s is not scheduled any more; not running it",
                     self.storage.uid, name)
            return None
        if held is not None and claimed[0].metadata["claim"]["attempt"] > 1:
            log.warning("%s: instance %s: its lease expired while running; %s takes it over "
                        "(attempt %s)", self.storage.uid, name, worker,
                        claimed[0].metadata["claim"]["attempt"])
        if held is None:
            return self._start_claimed(name, commit, claimed)
        with Heartbeat(lambda: self._renew(name, held), held.seconds / 3,
                       f"{self.storage.uid}: {name}"):
            return self._start_claimed(name, commit, claimed, held.token)

    def _renew(self, name: str, lease: Lease) -> bool:
        commit = self.storage.transact(
            Plan(instances=(name,)), transition(lambda step: step.renew(name, lease.token, lease.seconds)))
        return bool(commit.changes.result)

    def _start_claimed(self, name: str, commit: Commit, claimed: tuple[TaskInstance, TaskConfig],
                       token: str | None = None) -> TaskInstance | None:
        try:
            self._after(commit)
        except SignalHandlingError as exc:
            # A raising task_started receiver must not leave the claimed instance running
            # forever: run it, then raise every receiver error together.
            try:
                self._run_claimed(name, *claimed, token=token)
            except SignalHandlingError as later:
                raise SignalHandlingError([*exc.caught_exceptions,
                                           *later.caught_exceptions]) from None
            raise
        return self._run_claimed(name, *claimed, token=token)

    def _run_claimed(self, name: str, running: TaskInstance,
                     config: TaskConfig, token: str | None = None) -> TaskInstance | None:
        task_name = running.task_name
        try:
            task = trigger_tasks.get(config.run)
        except Exception as exc:
            return self._finish_failed(name, exc, None, token)
        context = TaskContext(self, running, task)
        change: StatusChange | None = None
        try:
            outcome = task.run(context)
            if isinstance(outcome, StatusChange):
                change = outcome
            else:
                raw = self._encode_result(name, config, outcome)
                result = loads(raw)
                if signals.pre_fire.receivers:
                    send_event(signals.pre_fire, type(self), manager=self,
                               session_uid=self.storage.uid, trigger_name=task_name,
                               trigger_kwargs=result)
        except Retry as retry:
            return self._finish_retry(name, retry, context, token)
        except StatusChange as raised:
            change = raised
        except Exception as exc:
            return self._finish_failed(name, exc, context, token)
        except BaseException as exc:
            self._finish_failed(name, exc, context, token)
            raise
        if change is not None:
            return self._finish_status(name, change, context, token)
        commit = self.storage.transact(
            Plan(trigger=task_name, instances=(name,)),
            transition(lambda step: step.complete(name, raw, context.log_level, token=token)))
        if not commit.changes.result:
            current = self.storage.get(name)
            log.warning("%s: instance %s was changed while it ran (now %s); its result is not "
                        "stored", self.storage.uid, name, current and current.status.value)
            return current
        self._after(commit, fired=(task_name, result))
        return commit.changes.instances[name]

    @staticmethod
    def _encode_result(name: str, config: TaskConfig, outcome: object) -> bytes:
        """A task's return value as cascade kwargs: a JSON mapping, ``None`` meaning ``{}``."""
        if outcome is not None and not isinstance(outcome, Mapping):
            raise InvalidTaskResultError(
                f"task {config.run!r} returned {type(outcome).__name__}; a trigger task must "
                "return a mapping (the kwargs of its cascade) or None")
        try:
            return dumps_mapping(outcome, f"result of {name}")
        except UnstorableKwargsError as exc:
            raise InvalidTaskResultError(str(exc)) from None

    def _finish_failed(self, name: str, exc: BaseException, context: TaskContext | None,
                       token: str | None = None) -> TaskInstance | None:
        if context is None or id(exc) not in context.logged_exceptions:
            log.warning("%s: task instance %s failed: %s: %s", self.storage.uid, name,
                        type(exc).__name__, exc)
        meta = _failure_metadata(exc)
        level = context.log_level if context else logging.NOTSET
        commit = self.storage.transact(
            Plan(instances=(name,)), transition(lambda step: step.fail(name, meta, level, exc, token)))
        self._after(commit)
        return commit.changes.instances.get(name)

    def _finish_retry(self, name: str, retry: Retry, context: TaskContext,
                      token: str | None = None) -> TaskInstance | None:
        replacement = retry.replacement_kwargs
        if replacement is not None:
            try:
                replacement = loads(dumps_mapping(replacement, f"replacement kwargs of {name}"))
            except UnstorableKwargsError as exc:
                return self._finish_failed(name, exc, context, token)
        cause = retry.exc if retry.exc is not None else retry
        meta = _failure_metadata(cause, retry.__traceback__)
        retries = int(context.task_instance.metadata.get("retries", 0)) + 1

        def compute(step: Transition) -> TaskInstance | None:
            if step.fail(name, meta, context.log_level, cause, token) is None:
                return None
            return step.replay(name, replacement, retry.cooldown, {"retries": retries})

        commit = self.storage.transact(Plan(instances=(name,)), transition(compute))
        copy = commit.changes.result
        self._after(commit, then=None if copy is None else lambda: self._replayed(commit, copy, name))
        return commit.changes.instances.get(name)

    def _finish_status(self, name: str, change: StatusChange, context: TaskContext,
                       token: str | None = None) -> TaskInstance | None:
        try:
            prepared = self._prepare_status(name, change.status, change.metadata,
                                            change.cascade, change.cascade_kwargs)
        except Exception as exc:  # metadata that cannot be stored, a vetoed cascade
            return self._finish_failed(name, exc, context, token)
        return self._commit_status(name, prepared, context.log_level, token)

    # -- after a commit ------------------------------------------------------------------------

    def _announce(self, notice: Notice) -> None:
        signal = _NOTICE_SIGNALS.get(notice.kind)
        if signal is None or not signal.receivers:
            return
        send_event(signal, _sender_of(notice.config), manager=self, session_uid=self.storage.uid,
                   task_instance=notice.instance, **notice.extra)

    def _emit(self, signal: Signal, sender: Any, errors: list[BaseException],
              **kwargs: Any) -> None:
        if signal.receivers:
            try:
                send_event(signal, sender, manager=self, session_uid=self.storage.uid, **kwargs)
            except SignalHandlingError as exc:
                errors.extend(exc.caught_exceptions)

    def _after(self, commit: Commit, fired: tuple[str, Mapping[str, Any]] | None = None,
               then: Callable[[], None] | None = None,
               announce: list[tuple[Signal, Any, JsonDict]] | None = None) -> None:
        """Everything that follows a commit, in the documented order:
        instance signals, ``post_fire`` (and ``session_finalized``), hooks,
        finalization, then the hand-off of scheduled instances to runners."""
        changes = commit.changes
        errors: list[BaseException] = []
        for notice in changes.notices:
            try:
                self._announce(notice)
            except SignalHandlingError as exc:
                errors.extend(exc.caught_exceptions)
        for signal, sender, kwargs in announce or ():
            self._emit(signal, sender, errors, **kwargs)
        if fired is not None and changes.result is not False:
            trigger_name, trigger_kwargs = fired
            scheduled = [instance for instance, _, _ in changes.schedule]
            if signals.post_fire.receivers:
                self._emit(signals.post_fire, type(self), errors, trigger_name=trigger_name,
                           trigger_kwargs=trigger_kwargs, tasks_scheduled=scheduled)
            if trigger_name == SESSION_FINALIZED and signals.session_finalized.receivers:
                self._emit(signals.session_finalized, type(self), errors)
            self._post_fire(trigger_name, scheduled)
        if then is not None:
            try:
                then()
            except SignalHandlingError as exc:
                errors.extend(exc.caught_exceptions)
        if commit.ready_to_finalize:
            try:
                self._finalize()
            except SignalHandlingError as exc:
                errors.extend(exc.caught_exceptions)
        failures: list[Exception] = []
        if changes.schedule:
            # One failed hand-off must not keep the others from their runners.
            for key, instances in self._by_runner(changes.schedule).items():
                try:
                    self.task_runner(key).schedule_many(self, instances)
                except SignalHandlingError as exc:
                    errors.extend(exc.caught_exceptions)
                except Exception as exc:
                    failures.append(exc)
        if failures:
            if errors:
                failures.append(SignalHandlingError(errors))
            for extra in failures[1:]:
                log.error("%s: handing off a task instance failed: %s", self.storage.uid,
                          extra, exc_info=extra)
            raise failures[0]
        if errors:
            raise SignalHandlingError(errors)

    def _by_runner(self, scheduled: list[tuple[TaskInstance, TaskConfig, float]]
                   ) -> dict[str, list[tuple[str, float]]]:
        """Runner name -> the scheduled ``(instance, countdown)`` pairs it takes, in order."""
        groups: dict[str, list[tuple[str, float]]] = {}
        for instance, config, countdown in scheduled:
            groups.setdefault(config.using or self.task_runner_name, []).append(
                (instance.name, countdown))
        return groups

    def task_runner(self, name: str | None = None) -> TaskRunner:
        """The runner registered as ``name`` (default: this manager's), made once per manager."""
        key = name or self.task_runner_name
        runner = self._runners.get(key)
        if runner is None:
            runner = self._runners[key] = task_runners.get(key)
        return runner

    def _finalize(self) -> None:
        """Fire ``sessionFinalized``: every counted task is resolved (and, with
        ``finalize_log_level``, no log at that level is unresolved). The engine stores
        it at most once per session; a losing concurrent attempt changes nothing."""
        level = self.finalize_log_level
        if level is not None and self.storage.get_instances_with_unresolved_logs(level):
            return
        if self.storage.is_finalized:  # a subclass hook (the cookbook recipe) got there first
            return
        self.fire(SESSION_FINALIZED)

    # -- hooks -----------------------------------------------------------------------------

    def _post_fire(self, trigger_name: str, tasks_scheduled: list[TaskInstance]) -> None:
        """Called after every stored firing (cascades included), before tasks are handed off."""

    def _post_replay(self, task_instance: TaskInstance) -> None:
        """Called after a failed instance was replayed, with the new copy."""

    def _post_skip(self, task_instance: TaskInstance, cascade: bool) -> None:
        """Called after a failed instance was skipped (and its cascade fired)."""

    # -- instances -------------------------------------------------------------------------------

    def _task_sender(self, instance: TaskInstance) -> Any:
        return _sender_of(self.storage.tasks.get(instance.task_name))

    def _replayed(self, commit: Commit, copy: TaskInstance, parent: str) -> None:
        errors: list[BaseException] = []
        if signals.post_replay.receivers:
            self._emit(signals.post_replay, _sender_of(_config_in(commit, copy.name)), errors,
                       task_instance=copy, parent=parent)
        self._post_replay(copy)
        if errors:
            raise SignalHandlingError(errors)

    def replay_failed_instance(self, instance: InstanceRef,
                               replacement_kwargs: Mapping[str, Any] | None = None) -> TaskInstance:
        """Mark a failed instance ``replayed`` and schedule a copy (``metadata["parent"]``).

        ``replacement_kwargs`` replaces the copy's trigger kwargs. Returns the copy.
        """
        name = _instance_name(instance)
        replacement = None
        if replacement_kwargs is not None:
            replacement = loads(dumps_mapping(replacement_kwargs, f"replacement kwargs of {name}"))
        if signals.pre_replay.receivers:
            current = self.storage[name]
            send_event(signals.pre_replay, self._task_sender(current), manager=self,
                       session_uid=self.storage.uid, task_instance=current)
        commit = self.storage.transact(Plan(instances=(name,)),
                                       transition(lambda step: step.replay(name, replacement)))
        copy: TaskInstance = commit.changes.result
        self._after(commit, then=lambda: self._replayed(commit, copy, name))
        return copy

    def skip_failed_instance(self, instance: InstanceRef, cascade: bool = False,
                             result: Mapping[str, Any] | None = None) -> TaskInstance:
        """Mark a failed instance ``skipped``; with ``cascade``, fire its task's name
        with ``result`` as if it had finished."""
        name = _instance_name(instance)
        raw = dumps_mapping(result, f"result for skipped {name}")
        task_name = split_instance_name(name)[0]
        current = None
        if signals.pre_skip.receivers:
            current = self.storage[name]
            send_event(signals.pre_skip, self._task_sender(current), manager=self,
                       session_uid=self.storage.uid, task_instance=current, cascade=cascade)
        if cascade and signals.pre_fire.receivers:
            send_event(signals.pre_fire, type(self), manager=self, session_uid=self.storage.uid,
                       trigger_name=task_name, trigger_kwargs=loads(raw))
        commit = self.storage.transact(Plan(trigger=task_name if cascade else None,
                                            instances=(name,)),
                                       transition(lambda step: step.skip(name, cascade, raw)))
        skipped: TaskInstance = commit.changes.result

        def announce() -> None:
            errors: list[BaseException] = []
            if signals.post_skip.receivers:
                self._emit(signals.post_skip, _sender_of(_config_in(commit, skipped.name)), errors,
                           task_instance=skipped, cascade=cascade)
            self._post_skip(skipped, cascade)
            if errors:
                raise SignalHandlingError(errors)

        self._after(commit, fired=(task_name, loads(raw)) if cascade else None, then=announce)
        return skipped

    def update_instance_status(self, instance: InstanceRef, status: str,
                               metadata: Mapping[str, Any] | None = None, cascade: bool = False,
                               cascade_kwargs: Mapping[str, Any] | None = None) -> TaskInstance:
        """Set an instance's status by hand (merging ``metadata``); with ``cascade``,
        fire its task's name with ``cascade_kwargs``."""
        return self._set_status(_instance_name(instance), status, metadata, cascade,
                                cascade_kwargs)

    def _set_status(self, name: str, status: str, metadata: Mapping[str, Any] | None,
                    cascade: bool, cascade_kwargs: Mapping[str, Any] | None) -> TaskInstance:
        return self._commit_status(
            name, self._prepare_status(name, status, metadata, cascade, cascade_kwargs))

    def _prepare_status(self, name: str, status: str, metadata: Mapping[str, Any] | None,
                        cascade: bool, cascade_kwargs: Mapping[str, Any] | None) -> _StatusUpdate:
        """Check and encode a status update; raises before anything is stored."""
        new_status = parse_status(status)
        meta = loads(dumps_mapping(metadata, f"metadata of {name}")) if metadata else None
        raw = dumps_mapping(cascade_kwargs, f"cascade kwargs of {name}")
        task_name = split_instance_name(name)[0]
        if cascade and signals.pre_fire.receivers:
            send_event(signals.pre_fire, type(self), manager=self, session_uid=self.storage.uid,
                       trigger_name=task_name, trigger_kwargs=loads(raw))
        return _StatusUpdate(new_status, meta, cascade, raw, task_name)

    def _commit_status(self, name: str, update: _StatusUpdate, level: int | None = None,
                       token: str | None = None) -> TaskInstance:
        commit = self.storage.transact(
            Plan(trigger=update.task_name if update.cascade else None, instances=(name,)),
            transition(lambda step: step.set_status(name, update.status, update.metadata,
                                              update.cascade, update.cascade_kwargs, level, token)))
        if name not in commit.changes.instances:
            unchanged: TaskInstance = commit.changes.result
            return unchanged  # the claim behind ``token`` was taken over: nothing was stored
        fired = (update.task_name, loads(update.cascade_kwargs)) if update.cascade else None
        self._after(commit, fired=fired)
        return commit.changes.instances[name]

    def update_instance_metadata(self, instance: InstanceRef,
                                 metadata: Mapping[str, Any]) -> TaskInstance:
        """Merge ``metadata`` into an instance's metadata."""
        name = _instance_name(instance)
        meta = loads(dumps_mapping(metadata, f"metadata of {name}"))
        commit = self.storage.transact(Plan(instances=(name,)),
                                       transition(lambda step: step.update_metadata(name, meta)))
        self._after(commit)
        return commit.changes.instances[name]

    def mark_instance_logs_resolved(self, instance: InstanceRef) -> TaskInstance:
        """Mark an instance's logs as reviewed: it no longer has unresolved logs."""
        name = _instance_name(instance)
        commit = self.storage.transact(Plan(instances=(name,)),
                                       transition(lambda step: step.resolve_logs(name)))
        self._after(commit)
        return commit.changes.instances[name]

    def get_unresolved_tasks(self) -> list[TaskConfig]:
        """Tasks that have not run yet or have an unresolved instance."""
        return self.storage.get_unresolved_tasks()

    def get_unresolved_instances(self) -> list[TaskInstance]:
        """Instances that are not finished, skipped, replayed or abandoned."""
        return self.storage.get_unresolved_instances()

    def debug_repr(self) -> JsonDict:
        """The whole session as JSON-compatible data (see ``StorageBackend.debug_repr``)."""
        return {"manager": _dotted(type(self)), "taskRunner": self.task_runner_name,
                **self.storage.debug_repr()}


def task_class(config: TaskConfig) -> type[TriggerTask]:
    """The registered task class a configuration runs."""
    return trigger_tasks.get_class(config.run)
