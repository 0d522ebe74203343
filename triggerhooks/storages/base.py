"""The storage abstraction: what the engine reads in a transition and what a commit writes.

A backend stores one session per ``uid``. The engine never rewrites a whole
session: every change goes through :meth:`StorageBackend.transact`, which gives
the engine a :class:`SessionView` of the part of the session a
:class:`Plan` names (the tasks one trigger concerns, a few instances), lets it
compute a :class:`Changes`, and commits that atomically. Backends with a
server (Redis) read the planned part in one round trip and commit with an
optimistic version check; embedded ones (memory, SQLite) hold a lock for the
few microseconds the computation takes.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..exceptions import InstanceNotFoundError
from ..models import PENDING, SESSION_FINALIZED, TaskConfig, TaskInstance, instance_name
from ..serialization import JsonDict

__all__ = ["Changes", "Commit", "Notice", "Plan", "SessionView", "StorageBackend", "TaskState"]


class TaskState:
    """Per-task bookkeeping that keeps every transition flat in session size.

    ``next`` is the number of instances created so far; ``open`` maps each
    unresolved instance to its status; ``logs`` maps instances whose logs at
    WARNING or above are not resolved yet to their level.
    """

    __slots__ = ("logs", "next", "open")

    def __init__(self, next: int = 0, open: dict[str, str] | None = None,
                 logs: dict[str, int] | None = None) -> None:
        self.next = next
        self.open: dict[str, str] = open if open is not None else {}
        self.logs: dict[str, int] = logs if logs is not None else {}

    @property
    def is_resolved(self) -> bool:
        """The task has run (has an instance) and none of its instances is unresolved."""
        return self.next > 0 and not self.open

    def copy(self) -> TaskState:
        return TaskState(self.next, dict(self.open), dict(self.logs))

    def pending(self) -> list[str]:
        """Names of instances not started yet, oldest first."""
        return [name for name, status in self.open.items() if status in PENDING]

    def to_json(self) -> JsonDict:
        data: JsonDict = {"n": self.next, "open": self.open}
        if self.logs:
            data["logs"] = self.logs
        return data

    @classmethod
    def from_json(cls, data: JsonDict) -> TaskState:
        return cls(data["n"], data["open"], data.get("logs"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskState) and (self.next, self.open, self.logs) == (
            other.next, other.open, other.logs)

    def __repr__(self) -> str:
        return f"TaskState(next={self.next}, open={self.open}, logs={self.logs})"


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


@dataclass(frozen=True, slots=True)
class Plan:
    """Which part of a session a transition reads.

    ``trigger``: the tasks it concerns, their states, pending instances and the
    kwargs of their triggers. ``instances``: these instances, their tasks and
    those tasks' states. ``full``: everything but the instances (configuration).
    """

    trigger: str | None = None
    instances: tuple[str, ...] = ()
    full: bool = False


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
    configs: dict[str, TaskConfig] | None = None
    counted: int | None = None
    unresolved: int | None = None
    metadata: JsonDict | None = None
    notices: list[Notice] = field(default_factory=list)
    schedule: list[tuple[TaskInstance, TaskConfig, float]] = field(default_factory=list)
    result: Any = None

    @property
    def is_empty(self) -> bool:
        return not (self.fired or self.instances or self.states or self.configs is not None
                    or self.metadata)


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


class StorageBackend(ABC):
    """One session (``uid``) in some store.

    Subclasses implement :meth:`transact` and the ``_load_*`` readers; the
    inspection API below is shared. Reads always show the stored state.
    """

    name: ClassVar[str] = ""
    url_schemes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, uid: str) -> None:
        if not isinstance(uid, str) or not uid:
            raise ValueError(f"a session uid must be a non-empty string, not {uid!r}")
        self.uid = uid

    # -- what each backend provides ------------------------------------------------

    @abstractmethod
    def transact(self, plan: Plan, compute: Compute) -> Commit:
        """Run ``compute`` on a consistent view of the planned part and commit its changes.

        ``compute`` must be free of side effects: optimistic backends call it
        again after a conflict.
        """

    @abstractmethod
    def _load_tasks(self) -> dict[str, TaskConfig]: ...

    @abstractmethod
    def _load_states(self) -> dict[str, TaskState]: ...

    @abstractmethod
    def _load_instances(self, names: Sequence[str] | None = None) -> dict[str, TaskInstance]:
        """The named instances that exist (all of them for ``None``), in the given order."""

    @abstractmethod
    def _load_kwargs(self) -> dict[str, JsonDict]: ...

    @abstractmethod
    def _load_metadata(self) -> JsonDict: ...

    @abstractmethod
    def clear(self) -> None:
        """Delete the whole session."""

    def reference(self) -> JsonDict:
        """A JSON description from which a worker rebuilds this storage (see ``open_reference``)."""
        return {"backend": self.name, "uid": self.uid}

    @classmethod
    def from_url(cls, url: str, uid: str, **options: Any) -> StorageBackend:
        """Build a storage from a URL of one of ``url_schemes``."""
        raise NotImplementedError(f"{cls.__name__} cannot be opened from a URL")

    @classmethod
    def from_reference(cls, reference: JsonDict) -> StorageBackend:
        """Rebuild a storage from what :meth:`reference` returned (in another process)."""
        return cls(reference["uid"])

    # -- inspection ------------------------------------------------------------------

    @property
    def tasks(self) -> dict[str, TaskConfig]:
        """Task name -> configuration."""
        return self._load_tasks()

    @property
    def instances(self) -> dict[str, TaskInstance]:
        """Instance name -> instance, every instance of the session."""
        return self._load_instances()

    @property
    def latest_kwargs(self) -> dict[str, JsonDict]:
        """Trigger name -> kwargs of its latest firing, for every trigger fired so far."""
        return self._load_kwargs()

    @property
    def metadata(self) -> JsonDict:
        """Session-level metadata (``createdAt``, ``finalizedAt``)."""
        return self._load_metadata()

    def get(self, instance: str | TaskInstance) -> TaskInstance | None:
        """The stored instance of that name (a name or a ``TaskInstance``), or ``None``."""
        name = instance.name if isinstance(instance, TaskInstance) else instance
        return self._load_instances([name]).get(name)

    def __getitem__(self, instance: str | TaskInstance) -> TaskInstance:
        found = self.get(instance)
        if found is None:
            name = instance.name if isinstance(instance, TaskInstance) else instance
            raise InstanceNotFoundError(f"session {self.uid!r} has no instance {name!r}")
        return found

    def __contains__(self, instance: object) -> bool:
        return isinstance(instance, (str, TaskInstance)) and self.get(instance) is not None

    def __iter__(self) -> Iterator[TaskInstance]:
        return iter(self._load_instances().values())

    def __len__(self) -> int:
        return sum(state.next for state in self._load_states().values())

    def instances_of_task(self, task: str | TaskConfig) -> list[TaskInstance]:
        """Every instance of a task, oldest first."""
        name = task.name if isinstance(task, TaskConfig) else task
        state = self._load_states().get(name)
        if state is None:
            return []
        names = [instance_name(name, index) for index in range(state.next)]
        return list(self._load_instances(names).values())

    def get_unresolved_tasks(self) -> list[TaskConfig]:
        """Tasks with no instance yet or with an unresolved instance."""
        states = self._load_states()
        return [config for name, config in self._load_tasks().items()
                if not (states.get(name) or TaskState()).is_resolved]

    def get_unresolved_instances(self) -> list[TaskInstance]:
        """Instances that are not finished, skipped, replayed or abandoned."""
        names = [name for state in self._load_states().values() for name in state.open]
        return list(self._load_instances(names).values())

    def get_instances_with_unresolved_logs(self, level: int = logging.WARNING) -> list[TaskInstance]:
        """Instances that logged at ``level`` or above (WARNING at least) and are not resolved."""
        names = [name for state in self._load_states().values()
                 for name, logged in state.logs.items() if logged >= level]
        return list(self._load_instances(names).values())

    @property
    def is_finalized(self) -> bool:
        return SESSION_FINALIZED in self._load_kwargs()

    def debug_repr(self) -> JsonDict:
        """The whole session as plain JSON-compatible data, for logs and bug reports."""
        return {
            "uid": self.uid,
            "tasks": {name: config.to_json() for name, config in self._load_tasks().items()},
            "instances": {name: inst.to_json() for name, inst in self._load_instances().items()},
            "latestKwargs": self._load_kwargs(),
            "metadata": self._load_metadata(),
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} uid={self.uid!r}>"
