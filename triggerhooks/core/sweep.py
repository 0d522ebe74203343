"""A recovery of one session: find its stuck instances and recover each, then repair what a
process killed between a firing and its follow-up left undone (see :mod:`.recovery`).

It reads the session's task states and the instances they list as scheduled or
running (never the finished ones), then runs one transition per instance it
recovers, each checking again under the commit: concurrent recoveries, or a
runner claiming meanwhile, recover nothing twice.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..models import SESSION_FINALIZED, TaskConfig, TaskStatus, utcnow
from .effects import after_commit
from .recovery import Recovery, Stuck, stuck
from .rules import Transition, transition
from .types import Plan, TaskState

if TYPE_CHECKING:
    from ..manager import TriggerManager

__all__ = ["find_stuck", "recover_session"]

log = logging.getLogger("triggerhooks.manager")

_OPEN_WORK = (TaskStatus.SCHEDULED.value, TaskStatus.RUNNING.value)


def find_stuck(manager: TriggerManager) -> list[Stuck]:
    """The stuck instances of ``manager``'s session (see :meth:`TriggerManager.stuck`)."""
    storage, grace = manager.storage, manager.claim_grace_seconds
    names = [name for state in storage._load_states().values()
             for name, status in state.open.items() if status in _OPEN_WORK]
    if not names:
        return []
    now = utcnow()
    found = (stuck(instance, grace, now) for instance in storage._load_instances(names).values())
    return [entry for entry in found if entry is not None]


class _Errors:
    """Errors of the hand-offs of one recovery: each logged, the first raised at the end
    (with its traceback, so it is logged without)."""

    def __init__(self) -> None:
        self.first: Exception | None = None

    def keep(self, what: str, exc: Exception) -> None:
        if self.first is None:
            self.first = exc
            log.error("recovery: %s: %s", what, exc)
        else:
            log.error("recovery: %s: %s", what, exc, exc_info=exc)


def _recover_instances(manager: TriggerManager, errors: _Errors) -> list[Recovery]:
    grace = manager.claim_grace_seconds
    done: list[Recovery] = []
    for found in find_stuck(manager):
        name = found.instance

        def body(step: Transition, name: str = name) -> object:
            return step.recover(name, grace)

        commit = manager.storage.transact(Plan(instances=(name,)), transition(body))
        recovered = commit.changes.result
        if recovered is None:
            continue  # claimed, finished or recovered by someone else meanwhile
        failed = recovered.status is TaskStatus.FAILED
        done.append(Recovery("failed" if failed else "handed off", name, found.reason))
        try:
            after_commit(manager, commit)
        except Exception as exc:
            errors.keep(f"handing off {name}", exc)
    return done


def _needs_rules(config: TaskConfig, state: TaskState, fired: set[str]) -> str | None:
    """A trigger to apply the rules with, when ``config``'s task should have moved on."""
    if config.unless and all(trigger in fired for trigger in config.unless):
        # Vetoed: its waiting instances are abandoned, and a task vetoed before it had any
        # gets an abandoned #0 (so that it counts as resolved).
        return sorted(config.unless)[0] if state.next == 0 or state.pending() else None
    if state.blocked is not None:
        return None
    if state.next == 0:  # its first instance exists from the first firing it sees
        return next((trigger for trigger in sorted(config.triggers) if trigger in fired), None)
    waiting = any(status == TaskStatus.UNSTARTED and name != state.vacant
                  for name, status in state.open.items())
    if not waiting or not all(trigger in fired for trigger in config.requires):
        return None
    return (config.requires or (config.and_every or "",))[0] or None


def _apply_rules(manager: TriggerManager, errors: _Errors) -> list[Recovery]:
    storage = manager.storage
    tasks = storage.tasks
    states = storage._load_states()
    fired = set(storage.latest_kwargs)
    done: list[Recovery] = []
    for config in tasks.values():
        trigger = _needs_rules(config, states.get(config.name) or TaskState(), fired)
        if trigger is None:
            continue
        def body(step: Transition, trigger: str = trigger) -> None:
            step.reevaluate(trigger)

        commit = storage.transact(Plan(trigger=trigger), transition(body))
        changes = commit.changes
        # One firing's rules may move several tasks on: each instance is its own task's.
        done += [Recovery("scheduled", instance.name,
                          f"every trigger of {instance.task_name} fired")
                 for instance, _, _ in changes.schedule]
        done += [Recovery("abandoned", notice.instance.name,
                          f"{notice.instance.task_name} was vetoed")
                 for notice in changes.notices if notice.kind == "abandoned"]
        try:
            after_commit(manager, commit)
        except Exception as exc:
            errors.keep(f"applying the rules to {config.name}", exc)
    return done


def _finalize(manager: TriggerManager) -> list[Recovery]:
    """Fire ``sessionFinalized`` when every counted task is resolved but it never fired."""
    storage = manager.storage
    if storage.is_finalized:
        return []
    tasks = storage.tasks
    if not any(not config.waits_for_finalization for config in tasks.values()):
        return []
    if any(not config.waits_for_finalization for config in storage.get_unresolved_tasks()):
        return []
    level = manager.finalize_log_level
    if level is not None and storage.get_instances_with_unresolved_logs(level):
        return []
    firing = manager.fire(SESSION_FINALIZED)
    return [] if firing.ignored else [Recovery("finalized", None, "every task is resolved")]


def recover_session(manager: TriggerManager) -> list[Recovery]:
    """Recover ``manager``'s session (see :meth:`TriggerManager.recover`)."""
    errors = _Errors()
    done = _recover_instances(manager, errors)
    done += _apply_rules(manager, errors)
    done += _finalize(manager)
    if errors.first is not None:
        raise errors.first
    return done
