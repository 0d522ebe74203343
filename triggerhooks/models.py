"""The value types of a session: task configurations, task instances and statuses."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import NamedTuple

from .exceptions import InstanceNotFoundError, InvalidStatusError
from .serialization import JsonDict, loads

__all__ = [
    "RESERVED_TASK_NAMES",
    "SESSION_FINALIZED",
    "Firing",
    "TaskConfig",
    "TaskInstance",
    "TaskStatus",
    "instance_name",
    "name_problem",
    "split_instance_name",
    "utcnow",
]

SESSION_FINALIZED = "sessionFinalized"
"""The trigger fired once when every task of a session is resolved."""
RESERVED_TASK_NAMES = frozenset({SESSION_FINALIZED})
"""Names the engine fires itself, which no task may take: a task's name is fired when one of
its instances finishes, and the engine reads these triggers with their own meaning."""


def name_problem(name: str) -> str | None:
    """Why ``name`` (a uid, trigger, task or key) cannot be stored, or ``None``: SQLite and
    Redis store text as UTF-8, which cannot hold a lone surrogate (``"\\udc80"``)."""
    if name.isascii():  # the usual name, at the cost of a flag lookup
        return None
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = name[exc.start].encode("unicode_escape").decode("ascii")
        return (f"contains a lone surrogate ({bad} at position {exc.start}), "
                "which UTF-8 cannot hold")
    return None


class TaskStatus(StrEnum):
    """Where a task instance is in its life; compares equal to its plain string."""

    UNSTARTED = "unstarted"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    REPLAYED = "replayed"
    SKIPPED = "skipped"
    ABANDONED = "abandoned"


RESOLVED = frozenset({TaskStatus.FINISHED, TaskStatus.SKIPPED, TaskStatus.REPLAYED,
                      TaskStatus.ABANDONED})
PENDING = frozenset({TaskStatus.UNSTARTED, TaskStatus.SCHEDULED})
SUPERSEDED = frozenset({TaskStatus.REPLAYED, TaskStatus.SKIPPED, TaskStatus.ABANDONED})
"""Statuses whose logs need no review: a copy replaced the instance, someone skipped it, or it never ran."""
LOG_REVIEW_LEVEL = logging.WARNING
"""Logs at this level or above stay unresolved until marked resolved."""
_STATUSES = {status.value: status for status in TaskStatus}


def utcnow() -> str:
    """The current time as an aware UTC ISO 8601 string."""
    return datetime.now(UTC).isoformat()


def instance_name(task: str, index: int) -> str:
    return f"{task}#{index}"


def split_instance_name(name: str) -> tuple[str, int]:
    """``"t_x#3"`` -> ``("t_x", 3)``; raises :class:`InstanceNotFoundError` for anything else."""
    task, sep, index = name.rpartition("#") if isinstance(name, str) else ("", "", "")
    if not sep or not task or not index.isdigit() or not index.isascii() or name_problem(name):
        shown = name.encode("utf-8", "backslashreplace").decode() if isinstance(name, str) else name
        raise InstanceNotFoundError(
            f"{shown!r} is not a task instance name (expected '<task>#<number>')")
    return task, int(index)


@dataclass(frozen=True, slots=True)
class TaskConfig:
    """One task of a session's configuration (see the configuration directives)."""

    name: str
    run: str
    after: tuple[str, ...] = ()
    and_every: str | None = None
    unless: tuple[str, ...] = ()
    with_params: JsonDict = field(default_factory=dict)
    using: str | None = None
    extras: JsonDict = field(default_factory=dict)
    requires: tuple[str, ...] = field(init=False, repr=False, compare=False)
    """The triggers that must have fired before an instance is scheduled: ``after``
    without ``and_every`` (each ``and_every`` firing brings its own instance)."""
    required: frozenset[str] = field(init=False, repr=False, compare=False)
    """``requires`` as a set: a fire asks whether its trigger is one of them."""
    triggers: frozenset[str] = field(init=False, repr=False, compare=False)
    """Every trigger whose firing concerns this task (``after``, ``andEvery``, ``unless``)."""

    def __post_init__(self) -> None:
        # Derived once: the engine reads these on every fire.
        requires = tuple(dict.fromkeys(t for t in self.after if t != self.and_every))
        object.__setattr__(self, "requires", requires)
        object.__setattr__(self, "required", frozenset(requires))
        names = {*self.after, *self.unless}
        if self.and_every is not None:
            names.add(self.and_every)
        object.__setattr__(self, "triggers", frozenset(names))

    @property
    def waits_for_finalization(self) -> bool:
        return SESSION_FINALIZED in self.after or self.and_every == SESSION_FINALIZED

    def to_json(self) -> JsonDict:
        data: JsonDict = {"run": self.run, "after": list(self.after)}
        if self.and_every is not None:
            data["andEvery"] = self.and_every
        if self.unless:
            data["unless"] = list(self.unless)
        if self.with_params:
            data["withParams"] = self.with_params
        if self.using is not None:
            data["using"] = self.using
        data.update(self.extras)
        return data

    @classmethod
    def from_json(cls, name: str, data: JsonDict) -> TaskConfig:
        known = {"run", "after", "andEvery", "unless", "withParams", "using"}
        return cls(
            name=name,
            run=data["run"],
            after=tuple(data.get("after", ())),
            and_every=data.get("andEvery"),
            unless=tuple(data.get("unless", ())),
            with_params=data.get("withParams", {}),
            using=data.get("using"),
            extras={k: v for k, v in data.items() if k not in known},
        )


_parsed: dict[tuple[str, bytes | str], TaskConfig] = {}
_PARSED_MAX = 4096


def stored_config(name: str, raw: bytes | str) -> TaskConfig:
    """A task's stored configuration (its JSON), parsed once per process: a fire reads the
    configurations of the tasks its trigger concerns, and parsing a big one (a fan-in
    after 1,600 triggers) costs more than the rest of the fire."""
    key = (name, raw)
    config = _parsed.get(key)
    if config is None:
        if len(_parsed) >= _PARSED_MAX:
            _parsed.clear()
        config = _parsed[key] = TaskConfig.from_json(name, loads(raw))
    return config


@dataclass(frozen=True, slots=True)
class TaskInstance:
    """One run (or planned run) of a task; ``name`` is ``"<task>#<n>"``.

    Instances are snapshots: reading the storage again gives the current state.
    """

    name: str
    status: TaskStatus = TaskStatus.UNSTARTED
    kwargs: JsonDict = field(default_factory=dict)
    """Trigger name -> kwargs of the firing this instance runs with (``withParams`` merged in)."""
    metadata: JsonDict = field(default_factory=dict)
    log_level: int = logging.NOTSET
    """The highest level the task logged at through its logger context (``NOTSET`` if none)."""
    logs_marked_resolved: bool = False
    """Set by ``mark_instance_logs_resolved``."""

    @property
    def task_name(self) -> str:
        return self.name.rpartition("#")[0]

    @property
    def index(self) -> int:
        return int(self.name.rpartition("#")[2])

    @property
    def log_level_name(self) -> str:
        return logging.getLevelName(self.log_level)

    @property
    def logs_resolved(self) -> bool:
        """Nothing in this instance's logs needs review: it logged nothing at WARNING or
        above, its logs were marked resolved, or it was replayed, skipped or abandoned."""
        return (self.logs_marked_resolved or self.log_level < LOG_REVIEW_LEVEL
                or self.status in SUPERSEDED)

    @property
    def is_resolved(self) -> bool:
        """Finished, skipped, replayed or abandoned: nothing more will happen to it."""
        return self.status in RESOLVED

    @property
    def can_run(self) -> bool:
        """Not started yet and may still run (unstarted or scheduled)."""
        return self.status in PENDING

    @property
    def can_replay(self) -> bool:
        """Failed: ``replay_failed_instance`` (or a retry) may run a copy of it."""
        return self.status is TaskStatus.FAILED

    @property
    def can_skip(self) -> bool:
        """Failed: ``skip_failed_instance`` may mark it skipped."""
        return self.status is TaskStatus.FAILED

    @property
    def can_abandon(self) -> bool:
        """Not started yet (unstarted or scheduled): an ``unless`` clause may abandon it."""
        return self.status in PENDING

    def to_json(self) -> JsonDict:
        data: JsonDict = {"status": self.status.value, "kwargs": self.kwargs,
                          "metadata": self.metadata}
        if self.log_level:
            data["logLevel"] = self.log_level
        if self.logs_marked_resolved:
            data["logsResolved"] = True
        return data

    @classmethod
    def from_json(cls, name: str, data: JsonDict) -> TaskInstance:
        return cls(
            name=name,
            status=_STATUSES[data["status"]],
            kwargs=data["kwargs"],
            metadata=data["metadata"],
            log_level=data.get("logLevel", 0),
            logs_marked_resolved=data.get("logsResolved", False),
        )

    def __repr__(self) -> str:
        return f"<TaskInstance {self.name} {self.status.value}>"


def parse_status(value: str | TaskStatus) -> TaskStatus:
    """Accept a status or its string, rejecting unknown values with the list of valid ones."""
    try:
        return _STATUSES[value]
    except (KeyError, TypeError):
        raise InvalidStatusError(
            f"unknown status {value!r}; expected one of {', '.join(_STATUSES)}"
        ) from None


class Firing(NamedTuple):
    """What :meth:`TriggerManager.fire` did: the firing it stored (or found stored).

    ``scheduled`` names the instances the firing itself scheduled (not those its
    cascades scheduled later). ``repeated`` is true when ``key`` had been fired
    before: nothing changed and the rest describes that first firing.
    ``ignored`` is true for a ``sessionFinalized`` fired again (never stored twice).
    """

    trigger_name: str
    key: str | None = None
    fired_at: str | None = None
    scheduled: tuple[str, ...] = ()
    repeated: bool = False
    ignored: bool = False

    def to_json(self) -> JsonDict:
        return {"trigger": self.trigger_name, "key": self.key, "firedAt": self.fired_at,
                "scheduled": list(self.scheduled), "repeated": self.repeated,
                "ignored": self.ignored}

