"""The :class:`SessionView` of a PostgreSQL transition: live rows, read while the
transaction holds the session's lock, so that nothing it read can change before its commit.

:meth:`PostgresView.begin` sends ``BEGIN``, takes the lock and reads what the
:class:`Plan` names in one round trip (psycopg's pipeline mode); what the rules ask
for beyond that is read when asked (one round trip each, the pending instances of a
task together) and remembered for the rest of the transition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...core.types import Plan, SessionView, TaskState
from ...models import TaskConfig, TaskInstance, stored_config
from ...serialization import loads
from .schema import Sql, plan_read
from .settings import loaded_name, stored_name

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresView"]

_BATCH = 1000
"""Instances read at most in one round trip when the rules ask for one of a task's
pending instances (they usually go on to read the others)."""

Row = tuple[Any, ...]


class PostgresView(SessionView):
    """One session's rows as one transaction sees them (see the module's docstring)."""

    def __init__(self, conn: psycopg.Connection[Any], sql: Sql, uid: str, schema: str) -> None:
        self.conn = conn
        self.sql = sql
        self.schema = schema
        self.uid = stored_name(uid)
        self.configs: dict[str, TaskConfig | None] = {}
        self.states: dict[str, TaskState] = {}
        self.waiting: dict[str, int | None] = {}
        self.fired_kwargs: dict[str, bytes | None] = {}
        self.fired_names: set[str] | None = None
        """Every trigger fired so far, once read (a plan with ``full``)."""
        self.index: dict[str, list[TaskConfig]] = {}
        self.every_task: dict[str, TaskConfig] | None = None
        self.instances: dict[str, TaskInstance | None] = {}
        self.keys: dict[str, bytes | None] = {}
        self.firsts: dict[str, bytes | None] = {}
        self.xid = ""
        """The transaction's id, to ask the server what became of it after a lost reply."""
        self.exists = False
        """The session has its row in ``th_sessions`` (every session that holds anything)."""
        self.counted = 0
        self.unresolved = 0
        self.metadata = b"{}"
        self.finalized = False
        self.work = 0
        """How many of the session's instances are scheduled or running (``th_active``)."""

    # -- reading ------------------------------------------------------------------------------

    def _query(self, sql: str, **params: Any) -> list[Row]:
        return self.conn.execute(sql, {"uid": self.uid, **params}).fetchall()

    def begin(self, plan: Plan, lock: int) -> None:
        """``BEGIN``, the session's lock and all the plan names, in one round trip (the read
        comes after the lock: it sees what the last holder committed)."""
        conn = self.conn
        conn.execute("BEGIN")
        locked = conn.execute(self.sql.lock, {"lock": lock})
        names = list(dict.fromkeys(plan.instances))
        tasks = list(dict.fromkeys(name.rpartition("#")[0] for name in names))
        params: dict[str, Any] = {"uid": self.uid}
        if plan.trigger is not None:
            params["trigger"] = stored_name(plan.trigger)
        if names:
            params["tasks"] = [stored_name(task) for task in tasks]
            params["instances"] = [stored_name(name) for name in names]
        if plan.key is not None:
            params["key"] = stored_name(plan.key)
        read = conn.execute(plan_read(self.schema, plan.trigger is not None, bool(names),
                                      plan.full, plan.key is not None), params, prepare=True)
        row = locked.fetchone()  # the round trip
        self.xid = str(row[1]) if row else ""
        rows: dict[str, list[Row]] = {}
        for kind, *rest in read.fetchall():
            rows.setdefault(kind, []).append(tuple(rest))
        self._take_session(rows)
        if plan.trigger is not None:
            trigger = plan.trigger
            self._take_index(trigger, sorted(rows.get("T", ()), key=lambda r: r[4]))
            self._take_fired(trigger, [(r[0], r[1]) for r in rows.get("K", ())])
        if names:
            self._take_configs(rows.get("C", ()), tasks)
            self._take_instances([(r[0], r[1]) for r in rows.get("I", ())], names)
        if plan.full:
            self._take_all(sorted(rows.get("A", ()), key=lambda r: r[4]))
            self._take_fired_names([(r[0],) for r in rows.get("N", ())])
        if plan.key is not None:
            found = rows.get("R")
            self.keys[plan.key] = found[0][1] if found else None

    def _take_session(self, rows: Mapping[str, list[Row]]) -> None:
        session = rows.get("S")
        if session:
            _, metadata, _, counted, unresolved = session[0]
            self.exists, self.counted, self.unresolved = True, counted, unresolved
            self.metadata = metadata
        self.finalized = "F" in rows
        work = rows.get("W")
        self.work = int(work[0][3]) if work else 0

    def _take_configs(self, rows: Iterable[Row], asked: Iterable[str] = ()) -> list[TaskConfig]:
        """Remember configurations with their states and counts (``asked``: names read, so
        that those without a row are known to have none)."""
        found = []
        for raw_name, config, state, missing, *_ in rows:
            name = loaded_name(raw_name)
            known = self.configs.get(name)
            if known is None:
                known = self.configs[name] = stored_config(name, config)
            found.append(known)
            self.states.setdefault(name, TaskState() if state is None
                                   else TaskState.from_json(loads(state)))
            self.waiting.setdefault(name, missing)
        for name in asked:
            self.configs.setdefault(name, None)
        return found

    def _take_index(self, trigger: str, rows: list[Row]) -> None:
        self.index[trigger] = self._take_configs(rows)

    def _take_fired(self, trigger: str, rows: list[Row]) -> None:
        """The kwargs of ``trigger`` and of the ``unless`` triggers of the tasks it concerns."""
        for name, kwargs in rows:
            self.fired_kwargs[loaded_name(name)] = kwargs
        for name in (trigger, *(u for c in self.index.get(trigger, ()) for u in c.unless)):
            self.fired_kwargs.setdefault(name, None)

    def _take_all(self, rows: list[Row]) -> None:
        configs = self._take_configs(rows)
        self.every_task = {config.name: config for config in configs}

    def _take_fired_names(self, rows: list[Row]) -> None:
        self.fired_names = {loaded_name(name) for (name,) in rows}

    def _take_instances(self, rows: Iterable[Row], asked: Iterable[str]) -> None:
        for raw_name, data in rows:
            name = loaded_name(raw_name)
            self.instances[name] = TaskInstance.from_json(name, loads(data))
        for name in asked:
            self.instances.setdefault(name, None)

    # -- the view -------------------------------------------------------------------------------

    def task(self, name: str) -> TaskConfig | None:
        if name not in self.configs:
            self._take_configs(self._query(self.sql.tasks, names=[stored_name(name)]), [name])
        return self.configs[name]

    def tasks_for(self, trigger: str) -> Sequence[TaskConfig]:
        found = self.index.get(trigger)
        if found is None:
            found = self.index[trigger] = self._take_configs(
                self._query(self.sql.trigger_tasks, trigger=stored_name(trigger)))
        return found

    def all_tasks(self) -> Mapping[str, TaskConfig]:
        if self.every_task is None:
            self._take_all(self._query(self.sql.all_tasks))
        assert self.every_task is not None
        return self.every_task

    def fired(self, trigger: str) -> bool:
        if trigger not in self.fired_kwargs and self.fired_names is not None:
            return trigger in self.fired_names
        return self.kwargs(trigger) is not None

    def kwargs(self, trigger: str) -> bytes | None:
        if trigger not in self.fired_kwargs:
            self.prefetch([trigger])
        return self.fired_kwargs[trigger]

    def prefetch(self, triggers: Iterable[str]) -> None:
        names = self.fired_names
        wanted = [t for t in dict.fromkeys(triggers) if t not in self.fired_kwargs]
        for trigger in wanted:
            if names is not None and trigger not in names:
                self.fired_kwargs[trigger] = None
        wanted = [t for t in wanted if t not in self.fired_kwargs]
        if wanted:
            rows = self._query(self.sql.kwargs, names=[stored_name(t) for t in wanted])
            for name, kwargs in rows:
                self.fired_kwargs[loaded_name(name)] = kwargs
            for trigger in wanted:
                self.fired_kwargs.setdefault(trigger, None)

    def first(self, trigger: str) -> bytes | None:
        if trigger not in self.firsts:
            self.prefetch_first([trigger])
        return self.firsts[trigger]

    def prefetch_first(self, triggers: Iterable[str]) -> None:
        wanted = [t for t in dict.fromkeys(triggers) if t not in self.firsts]
        if wanted:
            rows = self._query(self.sql.firsts, names=[stored_name(t) for t in wanted])
            for name, record in rows:
                self.firsts[loaded_name(name)] = record
            for trigger in wanted:
                self.firsts.setdefault(trigger, None)

    def state(self, task: str) -> TaskState:
        found = self.states.get(task)
        if found is None:
            rows = self._query(self.sql.states, names=[stored_name(task)])
            found = self.states[task] = (TaskState.from_json(loads(rows[0][1])) if rows
                                         else TaskState())
        return found

    def missing(self, task: str) -> int | None:
        if task not in self.waiting:
            rows = self._query(self.sql.missing, task=stored_name(task))
            self.waiting[task] = int(rows[0][0]) if rows else None
        return self.waiting[task]

    def fire_record(self, key: str) -> bytes | None:
        if key not in self.keys:
            rows = self._query(self.sql.key, key=stored_name(key))
            self.keys[key] = rows[0][0] if rows else None
        return self.keys[key]

    def instance(self, name: str) -> TaskInstance | None:
        if name not in self.instances:
            wanted = [name]
            state = self.states.get(name.rpartition("#")[0])
            if state is not None:  # the rules go on to read the task's other pending ones
                wanted += [other for other in state.pending()
                           if other not in self.instances and other != name][:_BATCH]
            self._take_instances(
                self._query(self.sql.instances, names=[stored_name(n) for n in wanted]), wanted)
        return self.instances[name]
