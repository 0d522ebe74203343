"""The value types of one transition: what the rules read (:class:`SessionView`,
:class:`TaskState`), which part of a session they read (:class:`Plan`), what they
write (:class:`Changes`, :class:`Notice`) and what a commit reports (:class:`Commit`).

Storages implement the view and commit the changes; the manager acts on the
commit. Nothing here does any I/O.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..models import PENDING, TaskConfig, TaskInstance, TaskStatus
from ..serialization import JsonDict, loads

_UNSTARTED = TaskStatus.UNSTARTED.value
_WORK = (TaskStatus.SCHEDULED.value, TaskStatus.RUNNING.value)

__all__ = ["Changes", "Commit", "Compute", "Notice", "Plan", "SessionView", "TaskState", "build_index",
           "first_record", "read_first"]


class TaskState:
    """Per-task bookkeeping that keeps every transition flat in session size.

    ``next`` is the number of instances created so far; ``open`` maps each
    unresolved instance to its status; ``logs`` maps instances whose logs at
    WARNING or above are not resolved yet to their level. ``vacant`` names the
    waiting instance of an ``andEvery`` task that no firing of its ``andEvery``
    trigger has reached yet (the next one takes it). ``blocked`` says why the task
    can never run: an instance it waited for was abandoned (its new instances are
    abandoned at once, as a vetoed task's are).
    """

    __slots__ = ("blocked", "logs", "next", "open", "vacant")

    def __init__(self, next: int = 0, open: dict[str, str] | None = None,
                 logs: dict[str, int] | None = None, vacant: str | None = None,
                 blocked: JsonDict | None = None) -> None:
        self.next = next
        self.open: dict[str, str] = open if open is not None else {}
        self.logs: dict[str, int] = logs if logs is not None else {}
        self.vacant = vacant
        self.blocked = blocked

    @property
    def is_resolved(self) -> bool:
        """The task has run (has an instance) and none of its instances is unresolved."""
        return self.next > 0 and not self.open

    def copy(self) -> TaskState:
        return TaskState(self.next, dict(self.open), dict(self.logs), self.vacant, self.blocked)

    def pending(self) -> list[str]:
        """Names of instances not started yet, oldest first."""
        return [name for name, status in self.open.items() if status in PENDING]

    @property
    def work(self) -> int:
        """How many of its instances are scheduled or running: work a runner owes, which a
        store indexes so that a sweeper finds the sessions to recover."""
        return sum(status in _WORK for status in self.open.values())

    @property
    def may_schedule(self) -> bool:
        """Readiness would schedule something: no instance yet, or one waiting unstarted."""
        return self.next == 0 or _UNSTARTED in self.open.values()

    def to_json(self) -> JsonDict:
        # "w" comes first, so a store's script can see it without decoding the state.
        data: JsonDict = {"w": 1} if self.may_schedule else {}
        data["n"] = self.next
        data["open"] = self.open
        if self.logs:
            data["logs"] = self.logs
        if self.vacant is not None:
            data["v"] = self.vacant
        if self.blocked is not None:
            data["b"] = self.blocked
        return data

    @classmethod
    def from_json(cls, data: JsonDict) -> TaskState:
        return cls(data["n"], data["open"], data.get("logs"), data.get("v"), data.get("b"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskState) and (
            self.next, self.open, self.logs, self.vacant, self.blocked) == (
            other.next, other.open, other.logs, other.vacant, other.blocked)

    def __repr__(self) -> str:
        extra = "".join(f", {name}={value!r}" for name, value in
                        (("vacant", self.vacant), ("blocked", self.blocked)) if value is not None)
        return f"TaskState(next={self.next}, open={self.open}, logs={self.logs}{extra})"


class SessionView(ABC):
    """What the engine may read during one transition.

    A backend answers from live state under its lock (memory, SQLite) or from
    what it prefetched for the :class:`Plan` (Redis); asking a prefetching view
    for something outside the plan is a bug in the plan.
    """

    @abstractmethod
    def task(self, name: str) -> TaskConfig | None: ...

    @abstractmethod
    def tasks_for(self, trigger: str) -> Sequence[TaskConfig]:
        """The tasks whose ``after``, ``andEvery`` or ``unless`` names ``trigger``."""

    @abstractmethod
    def all_tasks(self) -> Mapping[str, TaskConfig]:
        """Every task; only plans with ``full=True`` may ask."""

    @abstractmethod
    def fired(self, trigger: str) -> bool: ...

    @abstractmethod
    def kwargs(self, trigger: str) -> bytes | None:
        """The JSON kwargs of the latest firing of ``trigger``, if it fired."""

    @abstractmethod
    def state(self, task: str) -> TaskState:
        """The task's bookkeeping; the engine copies before changing it."""

    @abstractmethod
    def instance(self, name: str) -> TaskInstance | None: ...

    def missing(self, task: str) -> int | None:
        """How many of the task's ``requires`` have not fired, as the store counts them
        (``None``: not counted; the engine then asks :meth:`fired` of each)."""
        return None

    def prefetch(self, triggers: Iterable[str]) -> None:
        """A hint: the kwargs of ``triggers`` are about to be read (a store with round
        trips reads those it lacks at once)."""
        return None

    def first(self, trigger: str) -> bytes | None:
        """The record of the first firing of ``trigger`` (see :func:`first_record`), if the
        store keeps one: what a waiting instance received of a trigger fired after it was
        created. ``None``: not fired, or fired before the store kept these."""
        return None

    def prefetch_first(self, triggers: Iterable[str]) -> None:
        """A hint: the first firings of ``triggers`` are about to be read."""
        return None

    def fire_record(self, key: str) -> bytes | None:
        """The record (JSON) of the firing made with ``key``, if the plan's key was fired
        before; only for plans with a :attr:`Plan.key`, on stores whose backend sets
        ``supports_fire_keys``."""
        return None

    def recorded(self, trigger: str) -> bool:
        """The store recorded this transition's firing of ``trigger`` already (before the
        engine ran: see :attr:`Plan.record`); the engine must not write it again."""
        return False


@dataclass(frozen=True, slots=True)
class Plan:
    """Which part of a session a transition reads.

    ``trigger``: the tasks it concerns, their states and counts of missing triggers,
    and the kwargs of what a ready task runs with. ``instances``: these instances, their tasks and
    those tasks' states. ``full``: everything but the instances (configuration).
    """

    trigger: str | None = None
    instances: tuple[str, ...] = ()
    full: bool = False
    record: bytes | None = None
    """The kwargs of a firing of ``trigger`` that the store may record before the engine
    runs (in the same round trip as its read): a firing is recorded whatever the rules
    decide, so only what it makes ready needs a second one. Stores without round trips
    ignore it."""
    key: str | None = None
    """The fire key of a keyed firing: the view answers :meth:`SessionView.fire_record`
    for it, and the commit refuses if another writer recorded it meanwhile."""


@dataclass(slots=True)
class Notice:
    """Something that happened to an instance in a transition, announced after the commit."""

    kind: str
    instance: TaskInstance
    config: TaskConfig | None = None
    extra: JsonDict = field(default_factory=dict)


@dataclass(slots=True)
class Changes:
    """Everything one transition writes, and what the manager does after the commit."""

    fired: dict[str, bytes] = field(default_factory=dict)
    instances: dict[str, TaskInstance] = field(default_factory=dict)
    states: dict[str, TaskState] = field(default_factory=dict)
    unresolved_delta: int = 0
    depends_on: set[str] = field(default_factory=set)
    """Tasks whose instances (how many, which are pending) the outcome was decided on, not
    only edited: a store that commits concurrent edits of one task's instances side by
    side must refuse the commit if another instance of these was created meanwhile."""
    renumber: dict[str, int] = field(default_factory=dict)
    """Task -> the number of the first instance this transition created whose number
    does not matter (an ``andEvery`` firing's): a store may give them the next free
    numbers instead of refusing the commit because another writer took these."""
    first_fired: dict[str, int] = field(default_factory=dict)
    """Task -> how many of its ``requires`` fired for the first time in this transition:
    the store counts its missing triggers down by that much."""
    new_triggers: list[str] = field(default_factory=list)
    """Triggers that fired for the first time in this transition: the store keeps the
    record of each one's first firing (:func:`first_record`, at ``at``), once."""
    at: str = ""
    """The time of this transition (its firings, its timestamps)."""
    fire_key: tuple[str, bytes] | None = None
    """A fire key and its record (JSON), stored with the firing; the store keeps it as long
    as the session and must refuse the commit if the key was recorded meanwhile."""
    recover: list[tuple[TaskInstance, TaskConfig]] = field(default_factory=list)
    """Instances found stuck (scheduled and never claimed, or running with an expired
    lease) that the manager hands to their runner again after the commit."""
    configs: dict[str, TaskConfig] | None = None
    missing: dict[str, int] | None = None
    """With ``configs``: every task's count of ``requires`` not fired yet."""
    counted: int | None = None
    unresolved: int | None = None
    metadata: JsonDict | None = None
    notices: list[Notice] = field(default_factory=list)
    schedule: list[tuple[TaskInstance, TaskConfig, float]] = field(default_factory=list)
    result: Any = None

    @property
    def is_empty(self) -> bool:
        return not (self.fired or self.instances or self.states or self.configs is not None
                    or self.metadata or self.fire_key)


@dataclass(frozen=True, slots=True)
class Commit:
    """A committed transition and the session's counters right after it."""

    changes: Changes
    unresolved: int
    counted: int
    finalized: bool

    @property
    def ready_to_finalize(self) -> bool:
        """Every counted task is resolved and ``sessionFinalized`` has not fired yet."""
        return self.counted > 0 and self.unresolved == 0 and not self.finalized


Compute = Callable[[SessionView], Changes]


def build_index(configs: Mapping[str, TaskConfig]) -> dict[str, list[str]]:
    """trigger -> names of the tasks it concerns."""
    index: dict[str, list[str]] = {}
    for config in configs.values():
        for trigger in sorted(config.triggers):
            index.setdefault(trigger, []).append(config.name)
    return index


def first_record(at: str, kwargs: bytes) -> bytes:
    """What a store keeps of a trigger's first firing: its time and its kwargs (JSON), put
    together without decoding them."""
    return b'{"at":"' + at.encode() + b'","kwargs":' + kwargs + b"}"


def read_first(record: bytes) -> tuple[str, JsonDict]:
    """``(time, kwargs)`` of a :func:`first_record`."""
    data = loads(record)
    return data["at"], data["kwargs"]
