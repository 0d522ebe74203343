"""What is known of (part of) a Redis session, and what a script's snapshot tells of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...core.types import Plan, TaskState, build_index
from ...models import PENDING, TaskConfig, split_instance_name
from ...serialization import loads
from .protocol import FullSnapshot, IndexEntry, PlannedSnapshot, Snapshot, pairs

__all__ = ["MISSING", "Facts", "bumps_version", "index_entries", "ordered_configs", "parse_config",
           "parse_entry", "read_facts"]


class Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = Missing()
"""Not known (where ``None`` means known to be absent)."""


@dataclass
class Facts:
    """What is known of (part of) a session, each fact with what the commit checks it by.

    ``configs`` and ``index`` hold under ``cv``; ``states`` and ``instances``
    carry the version of their task's state; a fired trigger stays fired; a
    trigger's kwargs are checked by content, an unfired trigger by presence; a
    count of missing triggers only goes down, and is checked only when a
    transition found it above zero (``None``: the store does not count the task);
    a fire key's record is checked by content (``None``, or not known: not recorded).
    """

    cv: bytes = b""
    configs: dict[str, TaskConfig | None] = field(default_factory=dict)
    index: dict[str, IndexEntry] = field(default_factory=dict)
    states: dict[str, tuple[int, TaskState]] = field(default_factory=dict)
    missing: dict[str, int | None] = field(default_factory=dict)
    fired: dict[str, bytes | int | None] = field(default_factory=dict)
    instances: dict[str, tuple[int, bytes | None]] = field(default_factory=dict)
    keys: dict[str, bytes | None] = field(default_factory=dict)
    """Fire key -> its record."""
    firsts: dict[str, bytes | int | None] = field(default_factory=dict)
    """Trigger -> the record of its first firing (its length when too long to come inline;
    ``None``: none). Written once, it needs no check."""


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


def ordered_configs(raw: Mapping[bytes, bytes], order: bytes | None) -> dict[str, TaskConfig]:
    """Every configuration of ``raw`` (the ``cfg`` hash), in the stored task order."""
    names: list[str] = loads(order) if order else []
    known = set(names)
    names += sorted(n.decode() for n in raw if n.decode() not in known)
    configs = {}
    for name in names:
        data = raw.get(name.encode())
        if data is not None:
            configs[name] = parse_config(name, data)
    return configs


def index_entries(configs: Mapping[str, TaskConfig]) -> dict[str, IndexEntry]:
    """trigger -> what a firing of it concerns (see :class:`IndexEntry`)."""
    return {trigger: IndexEntry(
                tasks, sorted({t for task in tasks for t in configs[task].unless}),
                [task for task in tasks if trigger in configs[task].required],
                [task for task in tasks if configs[task].and_every == trigger])
            for trigger, tasks in build_index(configs).items()}


_PENDING = frozenset(status.value for status in PENDING)


def bumps_version(old: TaskState, new: TaskState) -> bool:
    """A task state's version counts what a decision on the task may rely on and other
    writers may add to: its instances (``andEvery`` slots) and its pending ones."""
    return new.next != old.next or any(
        status in _PENDING and old.open.get(name) not in _PENDING
        for name, status in new.open.items())


def parse_entry(raw: bytes | None) -> IndexEntry:
    """A stored index entry (none: the trigger concerns no task)."""
    return IndexEntry(*loads(raw)) if raw else IndexEntry([], [], [], [])


def read_facts(plan: Plan, snapshot: Snapshot) -> tuple[Facts, dict[str, TaskConfig] | None]:
    """The facts in a script's snapshot and, for a full plan, every configuration."""
    facts = Facts(cv=snapshot.head.cv)
    if plan.key is not None:
        facts.keys[plan.key] = snapshot.head.record
    if isinstance(snapshot, FullSnapshot):
        return facts, _full_facts(facts, snapshot)
    _planned_facts(facts, plan, snapshot)
    return facts, None


def _full_facts(facts: Facts, snap: FullSnapshot) -> dict[str, TaskConfig]:
    every = ordered_configs(dict(pairs(snap.configs)), snap.order)
    facts.configs.update(every)
    numbers = {task.decode(): int(version) for task, version in pairs(snap.versions)}
    for task, raw in pairs(snap.states):
        name = task.decode()
        facts.states[name] = (numbers.get(name, 0), TaskState.from_json(loads(raw)))
    for name in (*every, *numbers):  # a task without a stored state has none yet
        facts.states.setdefault(name, (numbers.get(name, 0), TaskState()))
    for fired in snap.fired:
        facts.fired[fired.decode()] = 1
    for config in every.values():  # every other trigger had not fired at this read
        for trigger in config.triggers:
            facts.fired.setdefault(trigger, None)
    counts = {task.decode(): int(count) for task, count in pairs(snap.missing)}
    for name in every:
        facts.missing[name] = counts.get(name)
    return every


def _planned_facts(facts: Facts, plan: Plan, snap: PlannedSnapshot) -> None:
    for raw_name, config, state, version, missing in zip(
            snap.tasks, snap.configs, snap.states, snap.versions, snap.missing, strict=True):
        name = raw_name.decode()
        facts.configs[name] = None if config is None else parse_config(name, config)
        facts.states[name] = (int(version or 0),
                              TaskState() if state is None else TaskState.from_json(loads(state)))
        facts.missing[name] = None if missing is None else int(missing)
    for trigger, value in zip(snap.triggers, snap.fired, strict=True):
        facts.fired[trigger.decode()] = value
    for trigger, value in zip(snap.triggers, snap.firsts, strict=True):
        facts.firsts[trigger.decode()] = value
    if plan.trigger is not None:
        facts.index[plan.trigger] = parse_entry(snap.entry)
    for raw_name, data in zip(snap.unstarted, snap.unstarted_data, strict=True):
        name = raw_name.decode()
        facts.instances[name] = (facts.states[split_instance_name(name)[0]][0], data)
    for name, data in zip(plan.instances, snap.instances, strict=True):
        task = split_instance_name(name)[0]
        facts.instances[name] = (facts.states[task][0], data)
