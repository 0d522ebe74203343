"""The trigger manager: the public face of a session.

It checks and encodes what a caller gives, runs one transition of the rules
(:mod:`triggerhooks.core.rules`) in the storage, and hands the commit to
:mod:`triggerhooks.core.effects` (signals, hooks, finalization, runners).
Running an instance lives in :mod:`triggerhooks.core.execution`, changes by
hand in :mod:`triggerhooks.core.updates`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any, ClassVar, cast

from . import signals
from .config import parse_configuration
from .core import effects, execution, sweep, updates
from .core.explain import Explanation, explain
from .core.leases import DEFAULT_LEASE_SECONDS, DEFAULT_MAX_ATTEMPTS, Lease, default_worker
from .core.recovery import DEFAULT_CLAIM_GRACE_SECONDS, Recovery, Stuck
from .core.rules import Transition, transition
from .core.types import Plan
from .events import load_receiver_modules, send_event
from .exceptions import InstanceNotFoundError, InvalidTriggerError, UnknownKeyError
from .models import (
    SESSION_FINALIZED,
    Firing,
    TaskConfig,
    TaskInstance,
    name_problem,
    split_instance_name,
)
from .registries import failed_plugins_hint, trigger_managers, trigger_tasks
from .runners import TaskRunner, task_runners
from .serialization import JsonDict, dotted_name, dumps_mapping, loads, safe_text
from .storages.base import StorageBackend

__all__ = ["CLAIM_GRACE_ENV", "LEASE_ENV", "TASK_RUNNER_ENV", "TriggerManager", "trigger_managers"]

TASK_RUNNER_ENV = "TRIGGERHOOKS_TASK_RUNNER"
LEASE_ENV = "TRIGGERHOOKS_LEASE_SECONDS"
CLAIM_GRACE_ENV = "TRIGGERHOOKS_CLAIM_GRACE_SECONDS"


def _seconds(given: float | None, env: str, default: float, what: str) -> float:
    """A positive number of seconds: ``given``, else ``$env``, else ``default``."""
    value: object = given
    if value is None:
        raw = os.environ.get(env)
        value = raw if raw else default
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = float("nan")
    if not 0 < seconds <= threading.TIMEOUT_MAX:  # longer ones overflow the clock's arithmetic
        source = f" (from ${env})" if given is None else ""
        raise ValueError(f"{what} must be a positive number of seconds, not {value!r}{source} "
                         f"(at most {threading.TIMEOUT_MAX:g})")
    return seconds


InstanceRef = str | TaskInstance


def _instance_name(instance: InstanceRef) -> str:
    name = instance.name if isinstance(instance, TaskInstance) else instance
    split_instance_name(name)
    return name


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
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    """How long a claim holds without a heartbeat; after that a recovery may take it over.
    Also ``$TRIGGERHOOKS_LEASE_SECONDS``."""
    claim_grace_seconds: float = DEFAULT_CLAIM_GRACE_SECONDS
    """How long a scheduled instance may wait for its runner to claim it before a recovery
    hands it off again. Also ``$TRIGGERHOOKS_CLAIM_GRACE_SECONDS``."""

    def __init__(self, storage: StorageBackend, *, task_runner: str | None = None,
                 finalize_log_level: int | None = None, lease_seconds: float | None = None,
                 claim_grace_seconds: float | None = None) -> None:
        self.storage = storage
        self.lease_seconds = _seconds(lease_seconds, LEASE_ENV, type(self).lease_seconds,
                                      "lease_seconds")
        self.claim_grace_seconds = _seconds(claim_grace_seconds, CLAIM_GRACE_ENV,
                                            type(self).claim_grace_seconds,
                                            "claim_grace_seconds")
        runner = (task_runner or type(self).default_task_runner_name
                  or os.environ.get(TASK_RUNNER_ENV) or "inline")
        if runner not in task_runners:
            raise UnknownKeyError("task runner", runner, task_runners.keys(), failed_plugins_hint())
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
            known_runners=set(map(str, task_runners.keys())), check_cycles=False)
        commit = self.storage.transact(Plan(full=True),
                                       transition(lambda step: step.configure(configs)))
        effects.after_commit(self, commit, announce=[(signals.configuration_updated, type(self),
                                                      {"tasks": configs})])

    # -- firing --------------------------------------------------------------------------

    def fire(self, trigger_name: str, trigger_kwargs: Mapping[str, Any] | None = None, *,
             key: str | None = None) -> Firing:
        """Record a trigger and run every task it makes ready (in any order, any process).

        With ``key``, the firing is applied at most once per session and key: a
        repeat changes nothing and returns what the first firing did
        (``repeated=True``), so a caller may retry a fire whose outcome it does not
        know. Returns the :class:`~triggerhooks.models.Firing`.

        Raises :class:`UnstorableKwargsError` before any change if the kwargs are
        not JSON-serializable. A task's exception is never raised here; an error
        raised after the firing was stored has ``committed`` set (see
        :class:`~triggerhooks.exceptions.TriggerhooksError`).
        """
        if not isinstance(trigger_name, str) or not trigger_name:
            raise InvalidTriggerError(
                f"a trigger name must be a non-empty string, not {trigger_name!r}")
        problem = name_problem(trigger_name)
        if problem:
            raise InvalidTriggerError(f"trigger name {safe_text(trigger_name)!r} {problem}")
        if key is not None:
            self._check_key(key)
        raw = dumps_mapping(trigger_kwargs, f"kwargs of trigger {trigger_name!r}")
        # Receivers get the kwargs as stored (JSON types), as tasks do; built only for them.
        kwargs = loads(raw) if signals.pre_fire.receivers or signals.post_fire.receivers else {}
        if signals.pre_fire.receivers:
            if trigger_name == SESSION_FINALIZED and self.storage.is_finalized:
                return Firing(trigger_name, key, ignored=True)  # once per session, no signals
            send_event(signals.pre_fire, type(self), manager=self, session_uid=self.storage.uid,
                       trigger_name=trigger_name, trigger_kwargs=kwargs)
        plan = Plan(trigger=trigger_name,
                    record=None if trigger_name == SESSION_FINALIZED else raw, key=key)
        if key is None:
            commit = self.storage.transact(
                plan, transition(lambda step: step.fire(trigger_name, raw), self.claim_grace_seconds))
            schedule = commit.changes.schedule
            scheduled = tuple([instance.name for instance, _, _ in schedule]) if schedule else ()
            firing = Firing(trigger_name, None, None, scheduled, False, not commit.changes.result)
        else:
            commit = self.storage.transact(
                plan, transition(lambda step: step.fire_once(trigger_name, raw, key),
                                 self.claim_grace_seconds))
            firing = cast(Firing, commit.changes.result)
            if firing.repeated:
                return firing
        effects.after_commit(self, commit,
                             fired=None if firing.ignored else (trigger_name, kwargs))
        return firing

    def _check_key(self, key: object) -> None:
        if not isinstance(key, str) or not key:
            raise InvalidTriggerError(f"a fire key must be a non-empty string, not {key!r}")
        problem = name_problem(key)
        if problem:
            raise InvalidTriggerError(f"fire key {safe_text(key)!r} {problem}")
        if not self.storage.supports_fire_keys:
            raise NotImplementedError(
                f"{type(self.storage).__name__} does not keep fire keys; fire without key=")

    # -- running (called by task runners) ----------------------------------------------------

    def execute(self, instance: InstanceRef, *, lease: float | None = None,
                worker: str | None = None,
                max_attempts: int | None = DEFAULT_MAX_ATTEMPTS) -> TaskInstance | None:
        """Run one scheduled instance: claim it, run its task, store the outcome.

        Returns the instance as stored at the end, or ``None`` when it was not
        ``scheduled`` (already taken by another worker, abandoned, ...).

        The claim holds a lease of ``lease`` seconds (default: ``lease_seconds``),
        recorded with ``worker`` (default: ``host:pid/thread``) in
        ``metadata["claim"]`` and renewed by a heartbeat while the task runs. A
        ``running`` instance whose lease expired (its worker died) is taken over
        instead of ignored — unless it was started ``max_attempts`` times already
        (``None``: no limit): it then ends ``failed`` with a
        :class:`~triggerhooks.exceptions.WorkerLostError`, which is returned.
        See :mod:`triggerhooks.core.leases`.
        """
        held = Lease(self.lease_seconds if lease is None else lease, worker or default_worker(),
                     max_attempts=max_attempts)
        return execution.execute(self, _instance_name(instance), held)

    # -- recovery --------------------------------------------------------------------------

    def stuck(self) -> list[Stuck]:
        """Instances scheduled but not claimed for longer than ``claim_grace_seconds``
        after they were due, and running ones whose lease expired."""
        return sweep.find_stuck(self)

    def recover(self) -> list[Recovery]:
        """Recover the session: hand each stuck instance (see :meth:`stuck`) to its runner
        again (which takes a running one over), or fail it with ``WorkerLostError`` when
        its worker was lost as often as its claim allows; schedule a task whose triggers
        all fired but that has no instance (a process killed between a firing and its
        follow-up), abandon a vetoed one, and finalize a session left unfinalized.

        Safe to run at any time, from any process, as often as wanted: nothing runs
        twice. Returns what it did. See ``docs/guarantees.md``.
        """
        return sweep.recover_session(self)

    def task_runner(self, name: str | None = None) -> TaskRunner:
        """The runner registered as ``name`` (default: this manager's), made once per manager."""
        key = name or self.task_runner_name
        runner = self._runners.get(key)
        if runner is None:
            runner = self._runners[key] = task_runners.get(key)
        return runner

    # -- hooks -----------------------------------------------------------------------------

    def _post_fire(self, trigger_name: str, tasks_scheduled: list[TaskInstance]) -> None:
        """Called after every stored firing (cascades included), before tasks are handed off."""

    def _post_replay(self, task_instance: TaskInstance) -> None:
        """Called after a failed instance was replayed, with the new copy."""

    def _post_skip(self, task_instance: TaskInstance, cascade: bool) -> None:
        """Called after a failed instance was skipped (and its cascade fired)."""

    # -- instances -------------------------------------------------------------------------------

    def replay_failed_instance(self, instance: InstanceRef,
                               replacement_kwargs: Mapping[str, Any] | None = None, *,
                               merge: bool = False) -> TaskInstance:
        """Mark a failed instance ``replayed`` and schedule a copy (``metadata["parent"]``).

        ``replacement_kwargs`` (trigger name -> kwargs) replaces the copy's trigger
        kwargs; with ``merge=True`` it replaces those of the triggers it names only, and
        the copy keeps the failed instance's kwargs of the others. Returns the copy.
        """
        return updates.replay_failed(self, _instance_name(instance), replacement_kwargs, merge)

    def skip_failed_instance(self, instance: InstanceRef, cascade: bool = False,
                             result: Mapping[str, Any] | None = None) -> TaskInstance:
        """Mark a failed instance ``skipped``; with ``cascade``, fire its task's name
        with ``result`` as if it had finished."""
        return updates.skip(self, _instance_name(instance), cascade, result)

    def update_instance_status(self, instance: InstanceRef, status: str,
                               metadata: Mapping[str, Any] | None = None, cascade: bool = False,
                               cascade_kwargs: Mapping[str, Any] | None = None, *,
                               force: bool = False) -> TaskInstance:
        """Set an instance's status by hand (merging ``metadata``); with ``cascade``,
        fire its task's name with ``cascade_kwargs``.

        A ``running`` instance whose lease is live is refused
        (:class:`InvalidStatusError`): its worker still runs it and would end it
        too. ``force=True`` sets it anyway (the worker's outcome is then not stored).
        """
        name = _instance_name(instance)
        prepared = updates.prepare_status(self, name, status, metadata, cascade, cascade_kwargs)
        return updates.commit_status(self, name, prepared._replace(force=force))

    def update_instance_metadata(self, instance: InstanceRef,
                                 metadata: Mapping[str, Any]) -> TaskInstance:
        """Merge ``metadata`` into an instance's metadata."""
        name = _instance_name(instance)
        meta = updates.decode_metadata(metadata, f"metadata of {name}")
        commit = self.storage.transact(Plan(instances=(name,)),
                                       transition(lambda step: step.update_metadata(name, meta),
                                                  self.claim_grace_seconds))
        effects.after_commit(self, commit)
        return commit.changes.instances[name]

    def mark_instance_logs_resolved(self, instance: InstanceRef) -> TaskInstance:
        """Mark an instance's logs as reviewed: it no longer has unresolved logs."""
        name = _instance_name(instance)
        commit = self.storage.transact(Plan(instances=(name,)),
                                       transition(lambda step: step.resolve_logs(name),
                                                  self.claim_grace_seconds))
        effects.after_commit(self, commit)
        return commit.changes.instances[name]

    def explain(self, task_or_instance: str | TaskConfig | TaskInstance) -> Explanation:
        """Why a task (or an instance's task) has not run yet, or where it stands: which of
        its ``after`` triggers fired (and when) and which are missing, and for a missing
        task's name why that task has not finished, down to the root causes. Reads only
        the tasks on that path, in one consistent view. See ``docs/inspecting.md``."""
        if isinstance(task_or_instance, (TaskConfig, TaskInstance)):
            target = task_or_instance.name
        else:
            target = task_or_instance
        if not isinstance(target, str) or not target or name_problem(target):
            raise InstanceNotFoundError(
                f"session {self.storage.uid!r} has no task named {safe_text(str(target))!r}")
        runner = self.task_runner_name

        def body(step: Transition) -> Explanation:
            found = explain(step.view, target, step.now, runner)
            if found.state == "unknown":
                raise InstanceNotFoundError(
                    f"session {self.storage.uid!r} has no task named {safe_text(target)!r}")
            return found

        plan = Plan(instances=(target,)) if "#" in target else Plan()
        result: Explanation = self.storage.transact(plan, transition(body)).changes.result
        return result

    def get_unresolved_tasks(self) -> list[TaskConfig]:
        """Tasks that have not run yet or have an unresolved instance."""
        return self.storage.get_unresolved_tasks()

    def get_unresolved_instances(self) -> list[TaskInstance]:
        """Instances that are not finished, skipped, replayed or abandoned."""
        return self.storage.get_unresolved_instances()

    def debug_repr(self) -> JsonDict:
        """The whole session as JSON-compatible data (see ``StorageBackend.debug_repr``)."""
        return {"manager": dotted_name(type(self)), "taskRunner": self.task_runner_name,
                **self.storage.debug_repr()}
