"""What this process learned of a Redis session from earlier reads and commits.

A :class:`SessionCache` keeps, per session, the facts earlier transitions read
and wrote, each with what the commit script checks it by, so that a transition
can usually compute and commit in one round trip. Stale facts cost a round
trip, never correctness: the script refuses a commit whose facts changed.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from ...core.types import Changes, Plan, TaskState
from ...models import RESOLVED, SESSION_FINALIZED, TaskConfig, split_instance_name
from ...serialization import loads
from .facts import MISSING, Facts, bumps_version, index_entries
from .protocol import IndexEntry

__all__ = ["CACHED_FACTS", "CACHED_KWARGS", "SessionCache"]

CACHED_FACTS = 2048
"""Facts of one kind a process keeps per session; past that they are forgotten and read again."""
CACHED_KWARGS = 512
"""Kwargs up to this many bytes are kept with what a process knows; longer ones are read again."""


class SessionCache:
    """What this process learned of one session from earlier reads and commits.

    Stale facts are harmless: the commit checks every fact a transition used
    and answers a stale one with a fresh read.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.facts: Facts | None = None

    def reset(self) -> None:
        with self.lock:
            self.facts = None

    def plan_facts(self, plan: Plan) -> Facts | None:
        """The facts ``plan`` needs, if all of them are known."""
        if plan.full or self.facts is None:  # (a cold session: no lock taken to learn that)
            return None
        with self.lock:
            known = self.facts
            return None if known is None else _facts_for(known, plan)

    def absorb(self, facts: Facts) -> None:
        """Take in a fresh read."""
        with self.lock:
            known = self.facts
            if known is None or known.cv != facts.cv:
                known = self.facts = Facts(cv=facts.cv)
            known.configs.update(facts.configs)
            known.index.update(facts.index)
            known.missing.update(facts.missing)
            fired = known.fired
            for trigger, value in facts.fired.items():
                fired[trigger] = (len(value) if isinstance(value, bytes)
                                  and len(value) > CACHED_KWARGS else value)
            states = known.states
            for task, state in facts.states.items():
                old = states.get(task)
                if old is not None and old[0] != state[0]:
                    for name in old[1].open:  # the only instances a cache keeps
                        known.instances.pop(name, None)
                states[task] = state
            for name, instance in facts.instances.items():
                _keep(known, name, instance)
            for key, record in facts.keys.items():
                _keep_key(known, key, record)
            _trim(known)

    def learn(self, read: Facts, checked: Mapping[str, int], changes: Changes,
              new_cv: bytes, encoded: Mapping[str, bytes]) -> None:
        """Take in what a commit based on ``read`` wrote (``encoded``: the instances' JSON)."""
        with self.lock:
            known = self._written_into(read, changes, new_cv)
            if known is None:
                return
            for trigger, raw in changes.fired.items():
                known.fired[trigger] = _kept(raw)
            versions = _learn_states(known, read, checked, changes)
            for task in changes.first_fired:
                # Forgotten, not counted down here: a fresh read that another thread of
                # this process took in after the commit holds the lower count already.
                # (A count this process knows is never below the stored one.)
                known.missing.pop(task, None)
            _learn_instances(known, versions, changes, encoded)
            if changes.fire_key is not None:
                _keep_key(known, *changes.fire_key)
            _trim(known)

    def _written_into(self, read: Facts, changes: Changes, new_cv: bytes) -> Facts | None:
        """The facts a commit based on ``read`` updates: a new configuration starts them
        afresh; otherwise they must have been known under the configuration ``read`` was."""
        known = self.facts
        if changes.configs is not None:
            if known is None:
                known = self.facts = Facts()
            _learn_configuration(known, read, changes.configs, changes.missing or {}, new_cv)
        elif known is None or known.cv != read.cv:
            return None
        elif new_cv:
            known.cv = new_cv
        return known

    def forget(self, instance: str) -> None:
        """``instance`` changed elsewhere."""
        with self.lock:
            if self.facts is not None:
                self.facts.instances.pop(instance, None)

    def instance(self, name: str, version: int) -> tuple[int, bytes | None] | None:
        """The instance as known at ``version`` of its task's state, if it is."""
        with self.lock:
            known = self.facts
            found = None if known is None else known.instances.get(name)
            return found if found is not None and found[0] == version else None


# -- what a plan needs, if all of it is known ------------------------------------------------


def _facts_for(known: Facts, plan: Plan) -> Facts | None:
    facts = Facts(cv=known.cv)
    tasks: list[str] = []
    if plan.trigger is not None:
        concerned = _trigger_facts(known, plan.trigger, facts)
        if concerned is None:
            return None
        tasks += concerned
    tasks += (split_instance_name(name)[0] for name in plan.instances)
    if plan.key is not None:  # a key not known is taken as not recorded (the commit checks)
        facts.keys[plan.key] = known.keys.get(plan.key)
    if _task_facts(known, tasks, facts) and _instance_facts(known, plan.instances, facts):
        return facts
    return None


def _trigger_facts(known: Facts, trigger: str, facts: Facts) -> list[str] | None:
    """Copy what ``trigger`` concerns into ``facts``: the tasks, or ``None`` if not all known."""
    entry = known.index.get(trigger)
    if entry is None:
        return None
    facts.index[trigger] = entry
    for each in (*entry.unless, trigger):
        value = known.fired.get(each, MISSING)
        if value is MISSING:
            return None
        facts.fired[each] = value
    for task in entry.tasks:
        count = known.missing.get(task, MISSING)
        if count is MISSING:
            return None
        facts.missing[task] = count
    return entry.tasks


def _task_facts(known: Facts, tasks: Sequence[str], facts: Facts) -> bool:
    """Copy the tasks' configurations and states into ``facts``, if all are known."""
    for task in tasks:
        config = known.configs.get(task, MISSING)
        state = known.states.get(task)
        if config is MISSING or state is None:
            return False
        facts.configs[task] = config
        facts.states[task] = state
    return True


def _instance_facts(known: Facts, names: Sequence[str], facts: Facts) -> bool:
    """Copy the instances into ``facts``, if all are known at their task's known version."""
    for name in names:
        instance = known.instances.get(name)
        task = split_instance_name(name)[0]
        if instance is None or instance[0] != facts.states[task][0]:
            return False
        facts.instances[name] = instance
    return True


# -- what a commit wrote ---------------------------------------------------------------------


def _learn_configuration(known: Facts, read: Facts, configs: Mapping[str, TaskConfig],
                         missing: Mapping[str, int], new_cv: bytes) -> None:
    known.cv = new_cv
    known.configs = dict(configs)
    known.index = index_entries(configs)
    known.missing = dict(missing)
    # A configuration is written after a full read, which saw every fired trigger and
    # every task state: what it did not see did not exist. Task names and
    # sessionFinalized are triggers too (cascades, finalization).
    for name, config in configs.items():
        known.states[name] = read.states.get(name) or (0, TaskState())
        for trigger in (name, SESSION_FINALIZED, *config.triggers):
            known.index.setdefault(trigger, IndexEntry([], [], [], []))
            known.fired[trigger] = _kept(read.fired.get(trigger))


def _learn_states(known: Facts, read: Facts, checked: Mapping[str, int],
                  changes: Changes) -> dict[str, int]:
    """Take in the written task states; return task -> its version after the commit, as
    far as this process can tell. (The commit did not always check the version: another
    writer may have moved it on, which costs the next commit that relies on it a conflict.
    The stored state may also hold other writers' changes to other instances: decisions
    on those read the instances themselves, which the commit checks.)"""
    versions: dict[str, int] = {}
    for task, state in changes.states.items():
        before = read.states.get(task)
        if task not in checked or before is None:  # pragma: no cover - read first
            known.states.pop(task, None)
            continue
        old = checked[task]
        new = old + 1 if bumps_version(before[1], state) else old
        versions[task] = new
        known.states[task] = (new, state)
        for name in state.open:
            cached = known.instances.get(name)
            if cached is not None and cached[0] == old and name not in changes.instances:
                known.instances[name] = (new, cached[1])
    return versions


def _learn_instances(known: Facts, versions: Mapping[str, int], changes: Changes,
                     encoded: Mapping[str, bytes]) -> None:
    for name, instance in changes.instances.items():
        version = versions.get(instance.task_name)
        if version is None or instance.status in RESOLVED:
            known.instances.pop(name, None)
        else:
            known.instances[name] = (version, encoded[name])


_RESOLVED_NAMES = frozenset(status.value for status in RESOLVED)


def _keep(known: Facts, name: str, instance: tuple[int, bytes | None]) -> None:
    """Cache only instances that can still change: those are the ones transitions read."""
    data = instance[1]
    if data is None or loads(data)["status"] not in _RESOLVED_NAMES:
        known.instances[name] = instance
    else:
        known.instances.pop(name, None)


def _keep_key(known: Facts, key: str, record: bytes | None) -> None:
    """Keep the records of fire keys (a repeat is then answered, and checked, at once);
    a key known not to be recorded is not kept: that is what an unknown key is taken for."""
    if record is None:
        known.keys.pop(key, None)
    else:
        known.keys[key] = record


def _kept(value: bytes | int | None) -> bytes | int | None:
    """What a cache keeps of a trigger's kwargs: small ones, else only that it fired."""
    if isinstance(value, bytes) and len(value) > CACHED_KWARGS:
        return len(value)
    return value


def _trim(known: Facts) -> None:
    """Keep what a session's cache holds bounded; forgotten facts are simply read again."""
    if max(len(known.configs), len(known.index), len(known.fired), len(known.states),
           len(known.missing), len(known.instances), len(known.keys)) > CACHED_FACTS:
        for facts in (known.configs, known.index, known.fired, known.states, known.missing,
                      known.instances, known.keys):
            if len(facts) > CACHED_FACTS:
                facts.clear()
