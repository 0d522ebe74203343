"""In-process storage: sessions live in a :class:`MemoryStore`, shared by uid."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from ..core.types import Changes, Commit, Compute, Plan, SessionView, TaskState, first_record
from ..models import SESSION_FINALIZED, TaskConfig, TaskInstance
from ..serialization import JsonDict, dumps, loads
from .base import StorageBackend

__all__ = ["MemoryStorageBackend", "MemoryStore"]

_EMPTY_STATE = TaskState()


class _Session(SessionView):
    """One session's state; it is its own view, read and changed under ``lock``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.configs: dict[str, TaskConfig] = {}
        self.index: dict[str, list[TaskConfig]] = {}
        self.fired_kwargs: dict[str, bytes] = {}
        self.firsts: dict[str, bytes] = {}
        """Trigger -> the record of its first firing (``first_record``)."""
        self.instance_data: dict[str, bytes] = {}
        self.states: dict[str, TaskState] = {}
        self.waiting: dict[str, int] = {}
        """Task -> how many of its ``requires`` have not fired."""
        self.counted = 0
        self.unresolved = 0
        self.metadata: JsonDict = {}
        self.fire_keys: dict[str, bytes] = {}

    def task(self, name: str) -> TaskConfig | None:
        return self.configs.get(name)

    def tasks_for(self, trigger: str) -> Sequence[TaskConfig]:
        return self.index.get(trigger, ())

    def all_tasks(self) -> Mapping[str, TaskConfig]:
        return self.configs

    def fired(self, trigger: str) -> bool:
        return trigger in self.fired_kwargs

    def kwargs(self, trigger: str) -> bytes | None:
        return self.fired_kwargs.get(trigger)

    def first(self, trigger: str) -> bytes | None:
        return self.firsts.get(trigger)

    def state(self, task: str) -> TaskState:
        return self.states.get(task, _EMPTY_STATE)

    def missing(self, task: str) -> int | None:
        return self.waiting.get(task)

    def fire_record(self, key: str) -> bytes | None:
        return self.fire_keys.get(key)

    def instance(self, name: str) -> TaskInstance | None:
        raw = self.instance_data.get(name)
        return None if raw is None else TaskInstance.from_json(name, loads(raw))

    def apply(self, changes: Changes) -> None:
        # Encode everything first so a value that cannot be stored changes nothing.
        encoded = {name: dumps(inst.to_json(), f"instance {name}")
                   for name, inst in changes.instances.items()}
        if changes.fired:
            self.fired_kwargs.update(changes.fired)
            for trigger in changes.new_triggers:
                self.firsts.setdefault(trigger, first_record(changes.at, changes.fired[trigger]))
        if encoded:
            self.instance_data.update(encoded)
        if changes.states:
            self.states.update(changes.states)
        if changes.configs is not None:
            self._configure(changes.configs, changes.missing or {})
        for task, count in changes.first_fired.items():
            if task in self.waiting:
                self.waiting[task] -= count
        self._count(changes)
        if changes.metadata:
            self.metadata.update(changes.metadata)
        if changes.fire_key is not None:
            key, record = changes.fire_key
            self.fire_keys[key] = record

    def _count(self, changes: Changes) -> None:
        if changes.counted is not None:
            self.counted = changes.counted
        if changes.unresolved is not None:
            self.unresolved = changes.unresolved
        self.unresolved += changes.unresolved_delta

    @property
    def has_work(self) -> bool:
        return any(state.work for state in self.states.values())

    @property
    def is_empty(self) -> bool:
        return not (self.configs or self.fired_kwargs or self.instance_data or self.metadata)

    def _configure(self, configs: Mapping[str, TaskConfig], missing: Mapping[str, int]) -> None:
        self.configs = dict(configs)
        index: dict[str, list[TaskConfig]] = {}
        for config in self.configs.values():
            for trigger in sorted(config.triggers):
                index.setdefault(trigger, []).append(config)
        self.index = index
        self.waiting = dict(missing)


class MemoryStore:
    """A process-local "server" of sessions. Storages with one store and uid share a session."""

    def __init__(self) -> None:
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def session(self, uid: str) -> _Session:
        found = self._sessions.get(uid)
        if found is None:
            with self._lock:
                found = self._sessions.setdefault(uid, _Session())
        return found

    def forget(self, uid: str) -> None:
        with self._lock:
            self._sessions.pop(uid, None)

    def clear(self) -> None:
        """Forget every session (for tests)."""
        with self._lock:
            self._sessions.clear()

    def __len__(self) -> int:
        return len(self._sessions)

    def uids(self) -> list[str]:
        """The sessions that hold anything."""
        with self._lock:
            sessions = list(self._sessions.items())
        return [uid for uid, session in sessions if not session.is_empty]

    def active(self) -> list[str]:
        """The sessions with an instance scheduled or running."""
        with self._lock:
            sessions = list(self._sessions.items())
        return [uid for uid, session in sessions if session.has_work]


default_store = MemoryStore()


class MemoryStorageBackend(StorageBackend):
    """Sessions in this process's memory: fast, shared by uid, gone when the process ends."""

    name = "memory"
    url_schemes = ("memory",)
    supports_fire_keys = True

    def __init__(self, uid: str, store: MemoryStore | None = None) -> None:
        super().__init__(uid)
        self.store = store if store is not None else default_store
        self._session = self.store.session(uid)

    @classmethod
    def from_url(cls, url: str, uid: str, **options: Any) -> MemoryStorageBackend:
        return cls(uid)

    def transact(self, plan: Plan, compute: Compute) -> Commit:
        session = self._session
        with session.lock:
            changes = compute(session)
            session.apply(changes)
            return Commit(changes, session.unresolved, session.counted,
                          SESSION_FINALIZED in session.fired_kwargs)

    def session_uids(self) -> list[str]:
        return self.store.uids()

    def active_sessions(self) -> list[str]:
        return self.store.active()

    def _load_tasks(self) -> dict[str, TaskConfig]:
        with self._session.lock:
            return dict(self._session.configs)

    def _load_states(self) -> dict[str, TaskState]:
        with self._session.lock:
            return {name: state.copy() for name, state in self._session.states.items()}

    def _load_instances(self, names: Sequence[str] | None = None) -> dict[str, TaskInstance]:
        session = self._session
        with session.lock:
            data = session.instance_data
            wanted = list(data) if names is None else [n for n in names if n in data]
            raw = [(name, data[name]) for name in wanted]
        return {name: TaskInstance.from_json(name, loads(blob)) for name, blob in raw}

    def _load_kwargs(self) -> dict[str, JsonDict]:
        with self._session.lock:
            items = list(self._session.fired_kwargs.items())
        return {trigger: loads(raw) for trigger, raw in items}

    def _load_metadata(self) -> JsonDict:
        with self._session.lock:
            return dict(self._session.metadata)

    def _load_firsts(self, triggers: Sequence[str] | None = None) -> dict[str, bytes]:
        firsts = self._session.firsts
        with self._session.lock:
            if triggers is None:
                return dict(firsts)
            return {t: firsts[t] for t in triggers if t in firsts}

    def clear(self) -> None:
        with self._session.lock:
            self._session.reset()
