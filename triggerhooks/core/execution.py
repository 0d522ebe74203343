"""Running one scheduled instance: claim it, run its task, store the outcome.

Runners call this through :meth:`TriggerManager.execute`. The claim
(``scheduled -> running``) is one transition; with a lease it is recorded in
``metadata["claim"]`` and renewed by a heartbeat while the task runs (see
:mod:`.leases`). The outcome — a result, a failure, a retry or a
:class:`~triggerhooks.task.StatusChange` — is a second transition that only
the claim's holder may commit.
"""

from __future__ import annotations

import logging
import reprlib
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING

from ..exceptions import (
    InvalidTaskResultError,
    SignalHandlingError,
    UnstorableKwargsError,
    exception_text,
)
from ..models import TaskConfig, TaskInstance
from ..registries import trigger_tasks
from ..serialization import JsonDict, dotted_name, dumps, dumps_mapping, loads, safe_text, storable
from ..task import Retry, StatusChange, TaskContext
from .effects import after_commit, send_pre_fire
from .leases import Heartbeat, Lease, claim_of
from .rules import Transition, transition
from .types import Commit, Plan
from .updates import commit_status, decode_replacement, prepare_status, replay

if TYPE_CHECKING:
    from ..manager import TriggerManager

__all__ = ["execute", "failure_metadata"]

log = logging.getLogger("triggerhooks.manager")


def _described(value: object) -> str:
    """``repr(value)``, or a short description when that raises (or recurses too deep)."""
    try:
        return safe_text(repr(value))
    except Exception:
        return safe_text(reprlib.repr(value))


def _context(exc: BaseException) -> object:
    """An exception's ``context`` as it can be stored: as it is, or its description."""
    try:
        context = getattr(exc, "context", None)
        return None if context is None else loads(dumps(context))
    except UnstorableKwargsError:
        return {"repr": _described(context)}
    except Exception as error:  # a context property that raises
        return {"repr": f"<context not readable: {_described(error)}>"}


def failure_metadata(exc: BaseException, where: TracebackType | None = None) -> JsonDict:
    """What a failed instance stores; ``where`` is the traceback to show for an exception
    that was never raised (``retry(exc=ValueError(...))``). Never raises: what cannot be
    described as it is is described as far as it can be."""
    context = _context(exc)
    return {
        "exceptionType": dotted_name(type(exc)),
        "exceptionInfo": safe_text("".join(traceback.format_exception(
            type(exc), exc, exc.__traceback__ or where))),
        "exceptionContext": context,
    }


def _unstorable(name: str, what: str, exc: UnstorableKwargsError,
                meta: JsonDict | None = None) -> JsonDict:
    """The failure an instance stores when its outcome (``what``) cannot be stored: the
    storage's reason, and what it can hold of the outcome (``meta``)."""
    failure = failure_metadata(InvalidTaskResultError(
        f"the {what} of {name} cannot be stored: {exc}"))
    if meta is not None:
        failure["exceptionContext"] = storable(meta)
    return failure


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


class _Execution:
    """One claimed instance on its way to its outcome (``token``: the claim's, if leased)."""

    __slots__ = ("manager", "name", "token")

    def __init__(self, manager: TriggerManager, name: str, token: str | None) -> None:
        self.manager = manager
        self.name = name
        self.token = token

    def start(self, commit: Commit, running: TaskInstance, config: TaskConfig) -> TaskInstance | None:
        """Announce the claim, then run; a raising ``task_started`` receiver must not leave
        the claimed instance running forever: it runs, then every receiver error is raised."""
        try:
            after_commit(self.manager, commit)
        except SignalHandlingError as exc:
            try:
                self.run(running, config)
            except SignalHandlingError as later:
                raise SignalHandlingError([*exc.caught_exceptions,
                                           *later.caught_exceptions]) from None
            raise
        return self.run(running, config)

    def run(self, running: TaskInstance, config: TaskConfig) -> TaskInstance | None:
        try:
            task = trigger_tasks.get(config.run)
        except Exception as exc:
            return self.failed(exc, None)
        context = TaskContext(self.manager, running, task)
        change: StatusChange | None = None
        try:
            outcome = task.run(context)
            if isinstance(outcome, StatusChange):
                change = outcome
            else:
                raw = _encode_result(self.name, config, outcome)
                result = loads(raw)
                send_pre_fire(self.manager, running.task_name, result)
        except Retry as retry:
            return self.retry(retry, context)
        except StatusChange as raised:
            change = raised
        except Exception as exc:
            return self.failed(exc, context)
        except BaseException as exc:
            self.failed(exc, context)
            raise
        if change is not None:
            return self.status(change, context)
        return self.finished(running.task_name, raw, result, context.log_level)

    def finished(self, task_name: str, raw: bytes, result: JsonDict,
                 level: int) -> TaskInstance | None:
        name, token = self.name, self.token
        try:
            commit = self.manager.storage.transact(
                Plan(trigger=task_name, instances=(name,)),
                transition(lambda step: step.complete(name, raw, level, token=token,
                                                      value=result)))
        except UnstorableKwargsError as exc:  # a result too deep once stored with its cascade
            return self.store_failure(_unstorable(name, "result", exc, {"result": result}),
                                      level, exc)
        if not commit.changes.result:
            current = self.manager.storage.get(name)
            log.warning("%s: instance %s was changed while it ran (now %s); its result is not "
                        "stored", self.manager.storage.uid, name,
                        current and current.status.value)
            return current
        after_commit(self.manager, commit, fired=(task_name, result))
        return commit.changes.instances[name]

    def failed(self, exc: BaseException, context: TaskContext | None) -> TaskInstance | None:
        name = self.name
        if context is None or id(exc) not in context.logged_exceptions:
            log.warning("%s: task instance %s failed: %s: %s", self.manager.storage.uid, name,
                        type(exc).__name__, exception_text(exc))
        level = context.log_level if context else logging.NOTSET
        return self.store_failure(failure_metadata(exc), level, exc)

    def store_failure(self, meta: JsonDict, level: int,
                      exc: BaseException | None) -> TaskInstance | None:
        """running -> failed with ``meta``; what the storage cannot hold of it is stored as
        :func:`~triggerhooks.serialization.storable` describes it."""
        name, token = self.name, self.token
        try:
            commit = self.manager.storage.transact(
                Plan(instances=(name,)),
                transition(lambda step: step.fail(name, meta, level, exc, token)))
        except UnstorableKwargsError:
            safe = storable(meta)
            commit = self.manager.storage.transact(
                Plan(instances=(name,)),
                transition(lambda step: step.fail(name, safe, level, exc, token)))
        after_commit(self.manager, commit)
        return commit.changes.instances.get(name)

    def retry(self, retry: Retry, context: TaskContext) -> TaskInstance | None:
        replacement = retry.replacement_kwargs
        if replacement is not None:
            try:
                replacement = decode_replacement(replacement,
                                                 f"replacement kwargs of {self.name}")
            except UnstorableKwargsError as exc:
                return self.failed(exc, context)
        cause = retry.exc if retry.exc is not None else retry
        retries = int(context.task_instance.metadata.get("retries", 0)) + 1
        failure = (failure_metadata(cause, retry.__traceback__), context.log_level, cause,
                   self.token)
        try:
            commit, _ = replay(self.manager, self.name, replacement, retry.cooldown,
                               {"retries": retries}, failure=failure)
        except UnstorableKwargsError as exc:  # what the retry carries cannot be stored
            return self.store_failure(
                _unstorable(self.name, "retry", exc, failure[0]), context.log_level, exc)
        return commit.changes.instances.get(self.name)

    def status(self, change: StatusChange, context: TaskContext) -> TaskInstance | None:
        try:
            prepared = prepare_status(self.manager, self.name, change.status, change.metadata,
                                      change.cascade, change.cascade_kwargs)
        except Exception as exc:  # metadata that cannot be stored, a vetoed cascade
            return self.failed(exc, context)
        try:
            return commit_status(self.manager, self.name, prepared, context.log_level,
                                 self.token)
        except UnstorableKwargsError as exc:  # its cascade's instances cannot be stored
            return self.failed(exc, context)


def _claim(manager: TriggerManager, name: str, held: Lease) -> Commit:
    def body(step: Transition) -> tuple[TaskInstance, TaskConfig] | None:
        return step.claim(name, held)
    return manager.storage.transact(Plan(instances=(name,)), transition(body))


def _renew(manager: TriggerManager, name: str, lease: Lease) -> bool:
    """Renew the lease; False once the claim was lost (another worker holds the instance).
    An instance ended under this claim (its outcome stored, its signals still being sent)
    has nothing to renew, and lost nothing."""
    commit = manager.storage.transact(
        Plan(instances=(name,)),
        transition(lambda step: step.renew(name, lease.token, lease.seconds)))
    if commit.changes.result:
        return True
    current = manager.storage.get(name)
    held = None if current is None else claim_of(current)
    return held is not None and held.token == lease.token


def _not_claimed(manager: TriggerManager, name: str, commit: Commit) -> TaskInstance | None:
    """No claim: the instance failed because its workers kept dying, or it is not scheduled."""
    lost = commit.changes.instances.get(name)
    if lost is not None:
        log.error("%s: instance %s: %s", manager.storage.uid, name,
                  lost.metadata["exceptionInfo"].strip())
        after_commit(manager, commit)
        return lost
    log.info("%s: instance %s is not scheduled any more; not running it",
             manager.storage.uid, name)
    return None


def execute(manager: TriggerManager, name: str, held: Lease) -> TaskInstance | None:
    """Claim ``name`` under ``held``, run its task with a heartbeat renewing the lease and
    store the outcome; see :meth:`TriggerManager.execute`."""
    commit = _claim(manager, name, held)
    claimed: tuple[TaskInstance, TaskConfig] | None = commit.changes.result
    if claimed is None:
        return _not_claimed(manager, name, commit)
    running, config = claimed
    attempt = running.metadata["claim"]["attempt"]
    if attempt > 1:
        log.warning("%s: instance %s: its lease expired while running; %s takes it over "
                    "(attempt %s)", manager.storage.uid, name, held.worker, attempt)
    with Heartbeat(lambda: _renew(manager, name, held), held.seconds / 3,
                   f"{manager.storage.uid}: {name}"):
        return _Execution(manager, name, held.token).start(commit, running, config)
