"""The storage abstraction: what the engine reads in a transition and what a commit writes.

A backend stores one session per ``uid``. The engine never rewrites a whole
session: every change goes through :meth:`StorageBackend.transact`, which gives
the engine a :class:`SessionView` of the part of the session a
:class:`Plan` names (the tasks one trigger concerns, a few instances), lets it
compute a :class:`Changes`, and commits that atomically. Redis reads the
planned part in one round trip and commits with an optimistic version check;
memory and SQLite hold a lock for the few microseconds the computation takes,
and PostgreSQL a lock of the session's for a transaction of two round trips.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from ..core.types import Commit, Compute, Plan, TaskState, read_first
from ..exceptions import InstanceNotFoundError, InvalidSessionError
from ..models import TaskConfig, TaskInstance, TaskStatus, instance_name, name_problem
from ..serialization import JsonDict, safe_text

__all__ = ["MAX_PAGE", "StorageBackend", "after_prefix", "check_page", "sorted_page"]

MAX_PAGE = 1000
"""The most sessions one :meth:`StorageBackend.page_sessions` call returns."""


def check_page(prefix: object, cursor: object, limit: object) -> int:
    """The arguments of :meth:`StorageBackend.page_sessions`, checked: ``limit`` from 1 to
    :data:`MAX_PAGE` (returned), ``prefix`` a string, ``cursor`` a string or ``None``."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit <= MAX_PAGE:
        raise ValueError(f"a page holds 1 to {MAX_PAGE} sessions, not {limit!r}")
    if not isinstance(prefix, str):
        raise ValueError(f"a uid prefix is a string, not {prefix!r}")
    if cursor is not None and (not isinstance(cursor, str) or not cursor):
        raise ValueError(f"a page cursor is a non-empty string or None, not {cursor!r}")
    return limit


def after_prefix(prefix: str) -> str:
    """The first text after every text that starts with ``prefix``, in code point order (a
    store's binary order of UTF-8), or ``""`` when there is none: a range that ends there
    holds exactly the texts of the prefix, NULs included, without a text function."""
    stem = prefix.rstrip(chr(0x10FFFF))
    if not stem:
        return ""
    following = ord(stem[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:  # surrogates cannot be stored: the next character
        following = 0xE000
    return stem[:-1] + chr(following)


def sorted_page(uids: Sequence[str], limit: int) -> tuple[list[str], str | None]:
    """The page of sorted ``uids`` (at most ``limit`` + 1 of them, the first ones after the
    cursor) and its next cursor: its last uid when more follow."""
    page = list(uids[:limit])
    return page, (page[-1] if len(uids) > limit else None)



class StorageBackend(ABC):
    """One session (``uid``) in some store.

    Subclasses implement :meth:`transact` and the ``_load_*`` readers; the
    inspection API below is shared. Reads always show the stored state.
    """

    name: ClassVar[str] = ""
    url_schemes: ClassVar[tuple[str, ...]] = ()
    supports_fire_keys: ClassVar[bool] = False
    """The backend keeps fire keys (``fire(..., key=...)``): its views answer
    ``fire_record`` for a plan's key and its commits store ``Changes.fire_key``."""

    def __init__(self, uid: str) -> None:
        if not isinstance(uid, str) or not uid:
            raise InvalidSessionError(f"a session uid must be a non-empty string, not {uid!r}")
        problem = name_problem(uid)
        if problem:
            raise InvalidSessionError(f"session uid {safe_text(uid)!r} {problem}")
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

    def _load_firsts(self, triggers: Sequence[str] | None = None) -> dict[str, bytes]:
        """Trigger -> the record of its first firing (``core.types.first_record``), for the
        named triggers that have one (all for ``None``). A store that keeps none returns
        nothing: waiting instances then show the latest firings."""
        return {}

    def _instances(self, names: Sequence[str] | None = None) -> dict[str, TaskInstance]:
        """:meth:`_load_instances`, with each waiting instance holding what it received: the
        firings of its triggers that fired after it was created are applied on read (a fire
        writes no waiting instance, however many triggers it waits for)."""
        found = self._load_instances(names)
        waiting = [i for i in found.values() if i.status is TaskStatus.UNSTARTED]
        if not waiting:
            return found
        configs = self._load_tasks()
        later: dict[str, list[str]] = {}
        for instance in waiting:
            config = configs.get(instance.task_name)
            if config is not None:
                triggers = [t for t in config.requires if t not in instance.kwargs]
                if triggers:
                    later[instance.name] = triggers
        if later:
            received = self._first_kwargs(sorted({t for ts in later.values() for t in ts}))
            for name, triggers in later.items():
                given = {t: received[t] for t in triggers if t in received}
                found[name] = replace(found[name], kwargs={**found[name].kwargs, **given})
        return found

    def _first_kwargs(self, triggers: Sequence[str]) -> dict[str, JsonDict]:
        """Trigger -> the kwargs of its first firing, for those of ``triggers`` that fired
        (the latest, for one fired before the store kept first firings)."""
        firsts = self._load_firsts(triggers)
        received = {t: read_first(record)[1] for t, record in firsts.items()}
        if len(received) < len(triggers):
            latest = self._load_kwargs()
            received.update({t: latest[t] for t in triggers if t not in received and t in latest})
        return received

    @abstractmethod
    def clear(self) -> None:
        """Delete the whole session."""

    def session_uids(self) -> list[str]:
        """The uid of every session stored where this one is (the same file, server and
        prefix, or process), for sweeps over a whole store (``triggerhooks recover --all``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot list its sessions")

    def page_sessions(self, prefix: str = "", cursor: str | None = None,
                      limit: int = 50) -> tuple[list[str], str | None]:
        """One page of the sessions stored where this one is, for listings (the web
        inspector): at most ``limit`` uids that start with ``prefix``, and the cursor of the
        next page (``None`` after the last). Pass that cursor back to read on; it is opaque.

        This default sorts :meth:`session_uids` (every uid, on every call), so that any
        backend, a plugin's too, can be listed; the built-in backends override it with a
        read whose cost grows with ``limit``, not with the number of sessions.
        """
        limit = check_page(prefix, cursor, limit)
        found = sorted(uid for uid in self.session_uids()
                       if uid.startswith(prefix) and (cursor is None or uid > cursor))
        return sorted_page(found, limit)

    def active_sessions(self) -> list[str]:
        """The uid of every session stored where this one is that has an instance scheduled
        or running: what a sweeper recovers (:meth:`TriggerManager.recover`). A backend
        keeps them indexed; this default lists every session."""
        return self.session_uids()

    def migrate(self) -> int | None:
        """Create or upgrade what the store keeps sessions in (tables, a file) and return its
        schema version; ``None`` for a store that needs nothing made (memory, Redis).
        Backends with tables make them on first use too: this is for doing it ahead, as a
        role that may (``triggerhooks migrate``)."""
        return None

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
        return self._instances()

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
        if not isinstance(name, str) or name_problem(name):
            return None  # never stored: no store holds such a name
        return self._instances([name]).get(name)

    def __getitem__(self, instance: str | TaskInstance) -> TaskInstance:
        found = self.get(instance)
        if found is None:
            name = instance.name if isinstance(instance, TaskInstance) else instance
            raise InstanceNotFoundError(f"session {self.uid!r} has no instance {name!r}"
                                        + self._instances_named(name))
        return found

    def _instances_named(self, name: object) -> str:
        """What a caller who gave a task's name for an instance's (``storage["t_x"]``)
        probably meant: ``; did you mean 't_x#0'?`` (the task's instances); else ``""``."""
        if not isinstance(name, str) or "#" in name:
            return ""
        state = self._load_states().get(name)
        count = state.next if state is not None else 0
        if not count:
            return f"; task {name!r} has no instance yet" if name in self._load_tasks() else ""
        shown = [repr(instance_name(name, index)) for index in range(min(count, 3))]
        if count > 3:
            last = instance_name(name, count - 1)
            return f"; did you mean one of {', '.join(shown)}, ... {last!r} ({count} instances)?"
        if len(shown) > 1:
            return f"; did you mean {', '.join(shown[:-1])} or {shown[-1]}?"
        return f"; did you mean {shown[0]}?"

    def __contains__(self, instance: object) -> bool:
        return isinstance(instance, (str, TaskInstance)) and self.get(instance) is not None

    def __iter__(self) -> Iterator[TaskInstance]:
        return iter(self._instances().values())

    def __len__(self) -> int:
        return sum(state.next for state in self._load_states().values())

    def instances_of_task(self, task: str | TaskConfig) -> list[TaskInstance]:
        """Every instance of a task, oldest first."""
        name = task.name if isinstance(task, TaskConfig) else task
        state = self._load_states().get(name)
        if state is None:
            return []
        names = [instance_name(name, index) for index in range(state.next)]
        return list(self._instances(names).values())

    def get_unresolved_tasks(self) -> list[TaskConfig]:
        """Tasks with no instance yet or with an unresolved instance."""
        states = self._load_states()
        return [config for name, config in self._load_tasks().items()
                if not (states.get(name) or TaskState()).is_resolved]

    def get_unresolved_instances(self) -> list[TaskInstance]:
        """Instances that are not finished, skipped, replayed or abandoned."""
        names = [name for state in self._load_states().values() for name in state.open]
        return list(self._instances(names).values())

    def get_instances_with_unresolved_logs(self, level: int = logging.WARNING) -> list[TaskInstance]:
        """Instances that logged at ``level`` or above (WARNING at least) and are not resolved."""
        names = [name for state in self._load_states().values()
                 for name, logged in state.logs.items() if logged >= level]
        return list(self._instances(names).values())

    @property
    def is_finalized(self) -> bool:
        """``sessionFinalized`` has fired (the rules stamp ``finalizedAt`` when it does);
        reads the session's metadata, not every trigger's kwargs."""
        return "finalizedAt" in self._load_metadata()

    def debug_repr(self) -> JsonDict:
        """The whole session as plain JSON-compatible data, for logs and bug reports."""
        return {
            "uid": self.uid,
            "tasks": {name: config.to_json() for name, config in self._load_tasks().items()},
            "instances": {name: inst.to_json() for name, inst in self._instances().items()},
            "latestKwargs": self._load_kwargs(),
            "metadata": self._load_metadata(),
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} uid={self.uid!r}>"
