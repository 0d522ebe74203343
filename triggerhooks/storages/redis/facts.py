"""What is known of (part of) a Redis session, and what a script's snapshot tells of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...core.types import Plan, TaskState, build_index
from ...models import PENDING, TaskConfig, split_instance_name, stored_config
from ...serialization import loads
from .protocol import FullSnapshot, IndexEntry, PlannedSnapshot, Snapshot, pairs

__all__ = ["MISSING", "Facts", "bumps_version", "index_entries", "ordered_configs", "parse_config",
           "parse_entry", "read_facts"]


class Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = Missing()
"""Not known (where ``None`` means known to be absent)."""


class Facts:
    """What is known of (part of) a session, each fact with what the commit checks it by.

    ``configs`` and ``index`` hold under ``cv``; ``states`` and ``instances``
    carry the version of their task's state; a fired trigger stays fired; a
    trigger's kwargs are checked by content, an unfired trigger by presence; a
    count of missing triggers only goes down, and is checked only when a
    transition found it above zero (``None``: the store does not count the task);
    a fire key's record is checked by content (``None``, or not known: not recorded).
    """

    __slots__ = ("configs", "cv", "fired", "firsts", "index", "instances", "keys", "missing",
                 "states")

    def __init__(self, cv: bytes = b"") -> None:
        self.cv = cv
        self.configs: dict[str, TaskConfig | None] = {}
        self.index: dict[str, IndexEntry] = {}
        self.states: dict[str, tuple[int, TaskState]] = {}
        self.missing: dict[str, int | None] = {}
        self.fired: dict[str, bytes | int | None] = {}
        self.instances: dict[str, tuple[int, bytes | None]] = {}
        self.keys: dict[str, bytes | None] = {}
        """Fire key -> its record."""
        self.firsts: dict[str, bytes | int | None] = {}
        """Trigger -> the record of its first firing (its length when too long to come
        inline; ``None``: none). Written once, it needs no check."""


parse_config = stored_config
"""A stored configuration, parsed once per process (configurations rarely change)."""


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


_entries: dict[bytes, IndexEntry] = {}


def parse_entry(raw: bytes | None) -> IndexEntry:
    """A stored index entry (none: the trigger concerns no task), parsed once per process
    (as configurations, entries rarely change; nothing changes a parsed one)."""
    if not raw:
        return IndexEntry([], [], [], [])
    entry = _entries.get(raw)
    if entry is None:
        if len(_entries) >= 4096:
            _entries.clear()
        entry = _entries[raw] = IndexEntry(*loads(raw))
    return entry


def read_facts(plan: Plan, snapshot: Snapshot, wrote: bytes | None = None,
               ) -> tuple[Facts, dict[str, TaskConfig] | None]:
    """The facts in a script's snapshot and, for a full plan, every configuration.
    ``wrote``: the kwargs of the plan's firing, when the same call recorded it (the
    script does not send them back)."""
    facts = Facts(cv=snapshot.head.cv)
    if plan.key is not None:
        facts.keys[plan.key] = snapshot.head.record
    if isinstance(snapshot, FullSnapshot):
        return facts, _full_facts(facts, snapshot)
    _planned_facts(facts, plan, snapshot)
    if wrote is not None and plan.trigger is not None:
        facts.fired.setdefault(plan.trigger, wrote)
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
    """Read the body of a planned snapshot (see :class:`.protocol.PlannedSnapshot`) in one
    pass: a cold fire waits for this, so empty parts cost no loop."""
    raw, at = snap.raw, snap.at
    states = facts.states
    size = raw[at]
    if size:
        configs, missing = facts.configs, facts.missing
        for i in range(at + 1, at + 1 + size):
            name = raw[i].decode()
            config, state = raw[i + size], raw[i + 2 * size]
            version, count = raw[i + 3 * size], raw[i + 4 * size]
            configs[name] = None if config is None else parse_config(name, config)
            states[name] = (int(version) if version else 0,
                            TaskState() if state is None else TaskState.from_json(loads(state)))
            missing[name] = None if count is None else int(count)
    at += 1 + 5 * size
    size = raw[at]
    if size:
        triggers = [trigger.decode() for trigger in raw[at + 1:at + 1 + size]]
        facts.fired.update(zip(triggers, raw[at + 1 + size:at + 1 + 2 * size], strict=True))
        if raw[at + 1 + 2 * size]:  # the triggers' first firings: all of them, or none
            facts.firsts.update(zip(triggers, raw[at + 2 + 2 * size:at + 2 + 3 * size],
                                    strict=True))
            at += size
    at += 2 + 2 * size
    size = raw[at]
    if size:
        for i, name in enumerate(plan.instances, at + 1):
            facts.instances[name] = (states[split_instance_name(name)[0]][0], raw[i])
    at += 1 + size
    size = raw[at]
    for i in range(at + 1, at + 1 + size):
        name = raw[i].decode()
        facts.instances[name] = (states[split_instance_name(name)[0]][0], raw[i + size])
    if plan.trigger is not None:
        facts.index[plan.trigger] = parse_entry(snap.entry)
