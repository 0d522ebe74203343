"""The read side of the web inspector: session summaries for the list, and what a session
page shows, read as cheaply as each needs.

A summary counts tasks from their bookkeeping (``TaskState``: instances created and the
unresolved ones with their status) and reads only each task's newest instance and the
unresolved ones, never every instance. A session page reads the instances of the rows
it shows.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import orjson

from ..core.types import TaskState
from ..graph import WorkflowGraph, render_image, to_dot
from ..models import TaskConfig, TaskInstance, TaskStatus, instance_name
from ..serialization import JsonDict
from ..storages import StorageBackend

__all__ = [
    "JSON_SHOWN",
    "InstanceRow",
    "SessionPage",
    "SessionSummary",
    "TaskRow",
    "graph_svg",
    "holds_anything",
    "last_change",
    "missing_file",
    "pretty_json",
    "session_page",
    "session_version",
    "summarize",
]

JSON_SHOWN = 20_000
"""Characters of one JSON value a page shows; the rest is behind the instance's JSON link."""
EDITABLE = 100_000
"""Kwargs longer than this (as JSON) are not put in the replay form."""

_ACTIVE = {TaskStatus.SCHEDULED.value, TaskStatus.RUNNING.value}
_OPEN_READ = 20
"""Unresolved instances of one task a summary reads at most, for their last change."""


class SessionNotFoundError(LookupError):
    """No session of that uid holds anything in the storage: a 404 of the inspector's (out
    of ``__all__``, as :class:`.auth.Refused`)."""


def missing_file(storage: StorageBackend) -> bool:
    """The storage keeps its sessions in a file (SQLite) that does not exist yet: looking
    must not create it."""
    path = getattr(storage, "path", None)
    return isinstance(path, str) and not os.path.exists(path)


def holds_anything(storage: StorageBackend) -> bool:
    """The session exists: it has tasks, fired triggers or metadata."""
    if missing_file(storage):
        return False
    return bool(storage.tasks or storage.metadata or storage.latest_kwargs)


def last_change(instance: TaskInstance) -> str:
    """When the instance last changed status (ISO 8601, UTC), or ``""``."""
    stamps = instance.metadata.get("timestamps")
    if not isinstance(stamps, dict):
        return ""
    return max((value for value in stamps.values() if isinstance(value, str)), default="")


def pretty_json(value: Any, limit: int = JSON_SHOWN) -> tuple[str, int]:
    """``value`` as indented JSON cut at ``limit`` characters, and its full length."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=repr)
    if len(text) <= limit:
        return text, len(text)
    return text[:limit] + "\n…", len(text)


# -- the sessions list ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SessionSummary:
    """One line of the sessions list: its tasks counted by where they stand."""

    uid: str
    tasks: int = 0
    resolved: int = 0
    """Tasks whose instances are all finished, skipped, replayed or abandoned."""
    failed: int = 0
    """Tasks with a failed instance."""
    active: int = 0
    """Tasks with an instance scheduled or running (and none failed)."""
    waiting: int = 0
    """Tasks without an instance yet, or with one waiting for its triggers."""
    instances: int = 0
    finalized: bool = False
    created: str = ""
    changed: str = ""
    """The latest status change of each task's newest instance and of its newest
    unresolved ones (scheduled, running or failed; at most 20 a task), or the session's
    creation or finalization when later."""
    problem: str = ""
    """Why the session could not be summarized (its data unreadable), else empty."""


def _index(name: str) -> int:
    return int(name.rpartition("#")[2])


def summarize(uid: str, storage: StorageBackend) -> SessionSummary:
    """The summary of one session, from its task bookkeeping and a few instances."""
    # The storage's readers (its subclass interface) give the bookkeeping without instances.
    states = storage._load_states()
    names = dict.fromkeys([*storage.tasks, *states])
    counts = {"resolved": 0, "failed": 0, "active": 0, "waiting": 0}
    looked_at: list[str] = []
    for name in names:
        state = states.get(name) or TaskState()
        statuses = set(state.open.values())
        if TaskStatus.FAILED.value in statuses:
            counts["failed"] += 1
        elif statuses & _ACTIVE:
            counts["active"] += 1
        elif state.is_resolved:
            counts["resolved"] += 1
        else:
            counts["waiting"] += 1
        # Unstarted instances changed last when they were made, before the newest one was.
        started = [n for n, status in state.open.items() if status != TaskStatus.UNSTARTED.value]
        looked_at += sorted(started, key=_index)[-_OPEN_READ:]
        if state.next:
            looked_at.append(instance_name(name, state.next - 1))
    meta = storage.metadata
    read = storage._load_instances(list(dict.fromkeys(looked_at)))
    stamps = [last_change(instance) for instance in read.values()]
    stamps += [str(meta.get(key) or "") for key in ("createdAt", "finalizedAt")]
    return SessionSummary(uid, len(names), instances=sum(s.next for s in states.values()),
                          finalized="finalizedAt" in meta, created=str(meta.get("createdAt") or ""),
                          changed=max(stamps, default=""), resolved=counts["resolved"],
                          failed=counts["failed"], active=counts["active"],
                          waiting=counts["waiting"])


def session_version(storage: StorageBackend) -> str:
    """A short digest that changes when an instance changes status, a trigger first fires
    or the session's metadata changes: what a live page polls."""
    states = {name: state.to_json() for name, state in storage._load_states().items()}
    data = [states, storage.metadata, sorted(storage.latest_kwargs), sorted(storage.tasks)]
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


# -- a session page ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class InstanceRow:
    """An instance as its row and its details show it."""

    instance: TaskInstance
    waiting_for: str
    changed: str
    detail: str
    kwargs: str
    kwargs_size: int
    metadata: str
    metadata_size: int
    editable_kwargs: str | None
    """The kwargs as the replay form starts with them, unless they are too long to edit."""

    @property
    def exception_info(self) -> str:
        return str(self.instance.metadata.get("exceptionInfo") or "")[-JSON_SHOWN:]

    @property
    def result(self) -> str:
        return pretty_json(self.instance.metadata.get("result"))[0]

    @property
    def exception_context(self) -> str:
        context = self.instance.metadata.get("exceptionContext")
        return pretty_json(context)[0] if context else ""

    @property
    def timestamps(self) -> list[tuple[str, str]]:
        stamps = self.instance.metadata.get("timestamps")
        if not isinstance(stamps, dict):
            return []
        order = {status.value: index for index, status in enumerate(TaskStatus)}
        return sorted(((str(stamp), status) for status, stamp in stamps.items()),
                      key=lambda item: (item[0], order.get(item[1], len(order))))


@dataclass(frozen=True, slots=True)
class TaskRow:
    """A task: what it waits for, what is still missing, its instances counted by status."""

    config: TaskConfig
    missing: list[str]
    counts: dict[str, int]


@dataclass(slots=True)
class SessionPage:
    """Everything a session page shows (the instances of one page of rows)."""

    uid: str
    metadata: JsonDict
    tasks: list[TaskRow]
    instances: list[InstanceRow]
    fired: list[str]
    total: int
    offset: int
    limit: int
    version: str = ""

    @property
    def finalized(self) -> bool:
        return "finalizedAt" in self.metadata


def _detail(instance: TaskInstance) -> str:
    meta = instance.metadata
    if instance.status is TaskStatus.FAILED:
        info = str(meta.get("exceptionInfo") or "").strip().splitlines()
        last = info[-1] if info else ""
        return f"{meta.get('exceptionType', '?')}: {last.partition(': ')[2] or last}"[:300]
    abandoned = meta.get("abandoned")
    if instance.status is TaskStatus.ABANDONED and isinstance(abandoned, dict):
        if abandoned.get("upstream"):
            return f"{abandoned['upstream']} was abandoned"
        return f"unless {abandoned.get('unless')} fired"
    if instance.status is TaskStatus.FINISHED and "result" in meta:
        return pretty_json(meta["result"], 120)[0].replace("\n", " ")
    if "parent" in meta:
        return f"replay of {meta['parent']}"
    return ""


def _waiting_for(instance: TaskInstance, config: TaskConfig | None, fired: set[str]) -> str:
    """What an unstarted instance still waits for: the ``after`` triggers that have not
    fired, and its ``andEvery`` firing when none has reached it yet."""
    if instance.status is not TaskStatus.UNSTARTED or config is None:
        return ""
    missing = [trigger for trigger in config.requires if trigger not in fired]
    if config.and_every is not None and config.and_every not in instance.kwargs:
        missing.append(f"every {config.and_every}")
    return ", ".join(missing)


def instance_row(instance: TaskInstance, config: TaskConfig | None, fired: set[str]) -> InstanceRow:
    kwargs, kwargs_size = pretty_json(instance.kwargs)
    metadata, metadata_size = pretty_json(instance.metadata)
    editable = pretty_json(instance.kwargs, EDITABLE)
    return InstanceRow(instance, _waiting_for(instance, config, fired), last_change(instance),
                       _detail(instance), kwargs, kwargs_size, metadata, metadata_size,
                       editable[0] if editable[1] <= EDITABLE else None)


def _counts(state: TaskState | None) -> dict[str, int]:
    """A task's instances counted by status: the unresolved ones by their own, the others
    together (the bookkeeping does not say which way they were resolved)."""
    if state is None:
        return {}
    counts: dict[str, int] = {}
    for status in state.open.values():
        counts[status] = counts.get(status, 0) + 1
    if state.next > len(state.open):
        counts["resolved"] = state.next - len(state.open)
    return counts


def session_page(uid: str, storage: StorageBackend, offset: int = 0,
                 limit: int = 200) -> SessionPage:
    """The tasks of a session and the rows ``offset`` to ``offset + limit`` of its
    instances (by task, then index), with only those instances read."""
    tasks = storage.tasks
    states = storage._load_states()
    fired_kwargs = storage.latest_kwargs
    fired = set(fired_kwargs)
    order = [*tasks, *(name for name in states if name not in tasks)]
    names = [instance_name(task, index) for task in order
             for index in range(states[task].next if task in states else 0)]
    shown = names[offset:offset + limit]
    loaded = storage._instances(shown)  # applies later firings to waiting instances
    rows = [instance_row(instance, tasks.get(instance.task_name), fired)
            for instance in loaded.values()]
    task_rows = [TaskRow(config, [t for t in config.requires if t not in fired],
                         _counts(states.get(name)))
                 for name, config in tasks.items()]
    return SessionPage(uid, storage.metadata, task_rows, rows, sorted(fired), len(names),
                       offset, limit)


def graph_svg(uid: str, storage: StorageBackend) -> bytes:
    """The session's workflow drawn by Graphviz, coloured by status (SVG)."""
    drawing = WorkflowGraph.build(storage.tasks, storage.instances.values(),
                                  storage.latest_kwargs, title=f"session {uid}")
    return render_image(to_dot(drawing), "svg")

