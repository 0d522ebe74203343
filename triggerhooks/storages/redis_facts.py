"""What a process knows of a Redis session, and how it learns it.

A :class:`SessionCache` keeps, per session, the facts earlier transitions read
and wrote, each with what the commit script checks it by, so that a transition
can usually compute and commit in one round trip. Stale facts cost a round
trip, never correctness: the script refuses a commit whose facts changed.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.types import Changes, Plan, TaskState, build_index
from ..models import RESOLVED, SESSION_FINALIZED, TaskConfig, split_instance_name
from ..serialization import loads

__all__ = ["INLINE_LIMIT", "MISSING", "Facts", "SessionCache", "index_entries", "ordered_configs",
           "parse_config", "parse_snapshot"]

INLINE_LIMIT = 4096
"""Kwargs up to this many bytes come with a read; longer ones only when a task needs them."""
CACHED_FACTS = 2048
"""Facts of one kind a process keeps per session; past that they are forgotten and read again."""
CACHED_KWARGS = 512
"""Kwargs up to this many bytes are kept with what a process knows; longer ones are read again."""


class Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = Missing()


@dataclass
class Facts:
    """What is known of (part of) a session, each fact with what the commit checks it by.

    ``configs`` and ``index`` hold under ``cv``; ``states`` and ``instances``
    carry the version of their task's state; a fired trigger stays fired; a
    trigger's kwargs are checked by content, an unfired trigger by presence.
    """

    cv: bytes = b""
    configs: dict[str, TaskConfig | None] = field(default_factory=dict)
    index: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    states: dict[str, tuple[int, TaskState]] = field(default_factory=dict)
    fired: dict[str, bytes | int | None] = field(default_factory=dict)
    instances: dict[str, tuple[int, bytes | None]] = field(default_factory=dict)


_parsed: dict[tuple[str, bytes], TaskConfig] = {}


def parse_config(name: str, raw: bytes) -> TaskConfig:
    """A stored configuration, parsed once per process (configurations rarely change)."""
    key = (name, raw)
    config = _parsed.get(key)
    if config is None:
        if len(_parsed) >= 4096:
            _parsed.clear()
        config = _parsed[key] = TaskConfig.from_json(name, loads(raw))
    return config


def parse_snapshot(plan: Plan, snap: list[Any]) -> tuple[Facts, tuple[int, int, bool],
                                                          dict[str, TaskConfig] | None]:
    """The facts, the counters and (for a full plan) every configuration in a script's snapshot."""
    head = snap[0]
    facts = Facts(cv=head[0] or b"")
    counters = (int(head[1] or 0), int(head[2] or 0), bool(snap[1]))
    if plan.full:
        configs, states, versions, fired, order = snap[2:]
        every = ordered_configs(dict(zip(configs[::2], configs[1::2], strict=True)), order)
        facts.configs.update(every)
        numbers = {t.decode(): int(v) for t, v in zip(versions[::2], versions[1::2], strict=True)}
        for task, raw in zip(states[::2], states[1::2], strict=True):
            name = task.decode()
            facts.states[name] = (numbers.get(name, 0), TaskState.from_json(loads(raw)))
        for name in (*every, *numbers):  # a task without a stored state has none yet
            facts.states.setdefault(name, (numbers.get(name, 0), TaskState()))
        for trigger in fired:
            facts.fired[trigger.decode()] = 1
        for config in every.values():  # every other trigger had not fired at this read
            for trigger in config.triggers:
                facts.fired.setdefault(trigger, None)
        return facts, counters, every
    concerned, tasks, configs, states, versions, triggers, fired, instances = snap[2:]
    for task, config, state, version in zip(tasks, configs, states, versions, strict=True):
        name = task.decode()
        facts.configs[name] = None if config is None else parse_config(name, config)
        facts.states[name] = (int(version or 0),
                              TaskState() if state is None else TaskState.from_json(loads(state)))
    names = [t.decode() for t in triggers]
    for trigger, value in zip(names, fired, strict=True):
        facts.fired[trigger] = value
    if plan.trigger is not None:
        facts.index[plan.trigger] = ([t.decode() for t in tasks[:concerned]], names[:-1])
    for name, data in zip(plan.instances, instances, strict=True):
        task = split_instance_name(name)[0]
        facts.instances[name] = (facts.states[task][0], data)
    return facts, counters, None


def ordered_configs(raw: Mapping[bytes, bytes], order: bytes | None) -> dict[str, TaskConfig]:
    names: list[str] = loads(order) if order else []
    known = set(names)
    names += sorted(n.decode() for n in raw if n.decode() not in known)
    configs = {}
    for name in names:
        data = raw.get(name.encode())
        if data is not None:
            configs[name] = parse_config(name, data)
    return configs


def index_entries(configs: Mapping[str, TaskConfig]) -> dict[str, tuple[list[str], list[str]]]:
    """trigger -> (tasks it concerns, every trigger of those tasks): what a fire needs to know."""
    return {trigger: (tasks, sorted({t for task in tasks for t in configs[task].triggers}))
            for trigger, tasks in build_index(configs).items()}


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
        if plan.full:
            return None
        with self.lock:
            known = self.facts
            if known is None:
                return None
            facts = Facts(cv=known.cv)
            tasks: list[str] = []
            if plan.trigger is not None:
                entry = known.index.get(plan.trigger)
                if entry is None:
                    return None
                facts.index[plan.trigger] = entry
                tasks += entry[0]
                for trigger in (*entry[1], plan.trigger):
                    value = known.fired.get(trigger, MISSING)
                    if value is MISSING:
                        return None
                    facts.fired[trigger] = value
            for name in plan.instances:
                tasks.append(split_instance_name(name)[0])
            for task in tasks:
                config = known.configs.get(task, MISSING)
                state = known.states.get(task)
                if config is MISSING or state is None:
                    return None
                facts.configs[task] = config
                facts.states[task] = state
            for name in plan.instances:
                instance = known.instances.get(name)
                task = split_instance_name(name)[0]
                if instance is None or instance[0] != facts.states[task][0]:
                    return None
                facts.instances[name] = instance
            return facts

    def absorb(self, facts: Facts) -> None:
        """Take in a fresh read."""
        with self.lock:
            known = self.facts
            if known is None or known.cv != facts.cv:
                known = self.facts = Facts(cv=facts.cv)
            known.configs.update(facts.configs)
            known.index.update(facts.index)
            for trigger, value in facts.fired.items():
                known.fired[trigger] = _kept(value)
            for task, state in facts.states.items():
                old = known.states.get(task)
                if old is not None and old[0] != state[0]:
                    for name in old[1].open:  # the only instances a cache keeps
                        known.instances.pop(name, None)
                known.states[task] = state
            for name, instance in facts.instances.items():
                self._keep(known, name, instance)
            _trim(known)

    def learn(self, read: Facts, checked: Mapping[str, int], changes: Changes,
              new_cv: bytes, encoded: Mapping[str, bytes]) -> None:
        """Take in what a commit based on ``read`` wrote (``encoded``: the instances' JSON)."""
        with self.lock:
            known = self.facts
            if changes.configs is not None:
                if known is None:
                    known = self.facts = Facts()
                known.cv = new_cv
                known.configs = dict(changes.configs)
                known.index = index_entries(changes.configs)
                # A configuration is written after a full read, which saw every fired
                # trigger and every task state: what it did not see did not exist. Task
                # names and sessionFinalized are triggers too (cascades, finalization).
                for name, config in changes.configs.items():
                    known.states[name] = read.states.get(name) or (0, TaskState())
                    for trigger in (name, SESSION_FINALIZED, *config.triggers):
                        known.index.setdefault(trigger, ([], []))
                        known.fired[trigger] = _kept(read.fired.get(trigger))
            elif known is None or known.cv != read.cv:
                return
            elif new_cv:
                known.cv = new_cv
            for trigger, raw in changes.fired.items():
                known.fired[trigger] = _kept(raw)
            versions: dict[str, int] = {}
            for task, state in changes.states.items():
                if task not in checked:  # pragma: no cover - every written state was read first
                    known.states.pop(task, None)
                    continue
                old = checked[task]
                versions[task] = old + 1
                known.states[task] = (old + 1, state)
                # Instances of the task this commit did not write were exactly as known at
                # the version it checked: they still are at the new one.
                for name in state.open:
                    cached = known.instances.get(name)
                    if cached is not None and cached[0] == old and name not in changes.instances:
                        known.instances[name] = (old + 1, cached[1])
            for name, instance in changes.instances.items():
                version = versions.get(instance.task_name)
                if version is None or instance.status in RESOLVED:
                    known.instances.pop(name, None)
                else:
                    known.instances[name] = (version, encoded[name])
            _trim(known)

    def instance(self, name: str, version: int) -> tuple[int, bytes | None] | None:
        """The instance as known at ``version`` of its task's state, if it is."""
        with self.lock:
            known = self.facts
            found = None if known is None else known.instances.get(name)
            return found if found is not None and found[0] == version else None

    @staticmethod
    def _keep(known: Facts, name: str, instance: tuple[int, bytes | None]) -> None:
        """Cache only instances that can still change: those are the ones transitions read."""
        data = instance[1]
        if data is None or loads(data)["status"] not in _RESOLVED_NAMES:
            known.instances[name] = instance
        else:
            known.instances.pop(name, None)


_RESOLVED_NAMES = frozenset(status.value for status in RESOLVED)


def _kept(value: bytes | int | None) -> bytes | int | None:
    """What a cache keeps of a trigger's kwargs: small ones, else only that it fired."""
    if isinstance(value, bytes) and len(value) > CACHED_KWARGS:
        return len(value)
    return value


def _trim(known: Facts) -> None:
    """Keep what a session's cache holds bounded; forgotten facts are simply read again."""
    for facts in (known.configs, known.index, known.fired, known.states, known.instances):
        if len(facts) > CACHED_FACTS:
            facts.clear()
