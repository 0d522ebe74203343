"""What a PostgreSQL transition writes: only what changed, one statement per table whatever
the number of rows (arrays unnested on the server), queued on the transaction's pipeline
to go with its ``COMMIT`` in one round trip."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from ...core.types import Changes, build_index
from ...models import SESSION_FINALIZED, TaskConfig
from ...serialization import dumps, loads
from .settings import stored_name
from .view import PostgresView

if TYPE_CHECKING:
    import psycopg

__all__ = ["Counters", "queue_writes"]

Counters = tuple[int, int, bool]
"""The session's ``counted`` and ``unresolved`` and whether it is finalized, after a commit."""


def queue_writes(conn: psycopg.Connection[Any], view: PostgresView, changes: Changes) -> Counters:
    """Queue the statements that store ``changes`` and return the counters after them.

    Everything is encoded before the first statement is queued, so a value that cannot be
    stored raises (:class:`UnstorableKwargsError`) with nothing sent."""
    sql, uid = view.sql, view.uid
    instances = {stored_name(name): dumps(inst.to_json(), f"instance {name}").decode()
                 for name, inst in changes.instances.items()}
    states = {stored_name(task): orjson.dumps(state.to_json()).decode()
              for task, state in changes.states.items()}
    work = sum(state.work - view.state(task).work for task, state in changes.states.items())
    configs = None if changes.configs is None else _configs(changes.configs, changes.missing or {})
    record = None if changes.fire_key is None else (stored_name(changes.fire_key[0]),
                                                    changes.fire_key[1].decode())
    counters, session = _counters(view, changes)

    def many(statement: str, rows: Mapping[str, str]) -> None:
        if rows:
            conn.execute(statement, {"uid": uid, "keys": list(rows), "values": list(rows.values())})

    many(sql.put_fired, {stored_name(t): raw.decode() for t, raw in changes.fired.items()})
    many(sql.put_instances, instances)
    many(sql.put_states, states)
    if configs is not None:
        for statement in sql.configure:
            conn.execute(statement, {"uid": uid, **configs})
    if changes.first_fired:
        conn.execute(sql.count_down, {"uid": uid,
                                      "keys": [stored_name(t) for t in changes.first_fired],
                                      "counts": list(changes.first_fired.values())})
    if record is not None:
        # A plain INSERT: the view found no record of the key under this same lock.
        conn.execute(sql.put_key, {"uid": uid, "key": record[0], "record": record[1]})
    if work:
        conn.execute(sql.add_work, {"uid": uid, "work": work})
        if work < 0:
            conn.execute(sql.drop_idle, {"uid": uid})
    if session is not None:
        conn.execute(sql.put_session, session)
    return counters


def _counters(view: PostgresView, changes: Changes) -> tuple[Counters, dict[str, Any] | None]:
    """The counters after ``changes``, and the session's row to write (``None``: unchanged)."""
    counted = view.counted if changes.counted is None else changes.counted
    unresolved = (view.unresolved if changes.unresolved is None else changes.unresolved) \
        + changes.unresolved_delta
    finalized = view.finalized or SESSION_FINALIZED in changes.fired
    metadata = view.metadata
    if changes.metadata:
        merged = loads(metadata)
        merged.update(changes.metadata)
        metadata = dumps(merged, "session metadata")
    counters = (counted, unresolved, finalized)
    if view.exists and metadata is view.metadata and (counted, unresolved) == (
            view.counted, view.unresolved):
        return counters, None
    return counters, {"uid": view.uid, "counted": counted, "unresolved": unresolved,
                      "metadata": metadata.decode()}


def _configs(configs: Mapping[str, TaskConfig], missing: Mapping[str, int]) -> dict[str, Any]:
    """The parameters of ``Sql.configure``: every task, its counts and the trigger index."""
    index = [(stored_name(trigger), pos, stored_name(task))
             for trigger, tasks in build_index(configs).items() for pos, task in enumerate(tasks)]
    return {
        "waiting": [stored_name(task) for task in missing],
        "counts": list(missing.values()),
        "names": [stored_name(name) for name in configs],
        "unless": [orjson.dumps([stored_name(t) for t in c.unless]).decode()
                   for c in configs.values()],
        "configs": [dumps(config.to_json(), f"configuration of task {name}").decode()
                    for name, config in configs.items()],
        "triggers": [row[0] for row in index],
        "positions": [row[1] for row in index],
        "tasks": [row[2] for row in index],
    }
