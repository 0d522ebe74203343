"""What a PostgreSQL transition writes: only what changed, in one statement whatever the
number of rows and tables (arrays unnested on the server, one data-modifying ``WITH`` part
per table), sent with the transaction's ``COMMIT`` in one round trip."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from ...core.types import Changes, build_index, first_record
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
    sql = view.sql
    params: dict[str, Any] = {"uid": view.uid}
    parts: list[str] = []

    def rows(statement: str, name: str, found: Mapping[str, str]) -> None:
        if found:
            parts.append(statement)
            params[name], params[f"{name}_json"] = list(found), list(found.values())

    rows(sql.put_fired, "fired", {stored_name(t): raw.decode() for t, raw in changes.fired.items()})
    rows(sql.put_firsts, "firsts", {
        stored_name(t): first_record(changes.at, changes.fired[t]).decode()
        for t in changes.new_triggers})
    rows(sql.put_instances, "instances", {
        stored_name(name): dumps(inst.to_json(), f"instance {name}").decode()
        for name, inst in changes.instances.items()})
    rows(sql.put_states, "states", {stored_name(task): orjson.dumps(state.to_json()).decode()
                                    for task, state in changes.states.items()})
    configs = None if changes.configs is None else _configs(changes.configs, changes.missing or {})
    if changes.first_fired:
        parts.append(sql.count_down)
        params["first"] = [stored_name(task) for task in changes.first_fired]
        params["first_counts"] = list(changes.first_fired.values())
    if changes.fire_key is not None:
        # A plain INSERT: the view found no record of the key under this same lock.
        parts.append(sql.put_key)
        params["key"], params["record"] = (stored_name(changes.fire_key[0]),
                                           changes.fire_key[1].decode())
    work = sum(state.work - view.state(task).work for task, state in changes.states.items())
    if work:
        params["work"] = view.work + work
        parts.append(sql.put_work if params["work"] > 0 else sql.drop_work)
    counters, session = _counters(view, changes)
    if session is not None:
        parts.append(sql.put_session)
        params.update(session)
    if configs is not None:  # first: the counts of missing triggers start again from them
        for statement in sql.configure:
            conn.execute(statement, {"uid": view.uid, **configs})
    if parts:
        conn.execute("WITH " + ", ".join(f"w{n} AS ({part})" for n, part in enumerate(parts))
                     + " SELECT", params, prepare=True)
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
    return counters, {"counted": counted, "unresolved": unresolved,
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
