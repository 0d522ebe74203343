"""The tables of a PostgreSQL storage and every statement run on them, for one schema.

Every table is keyed by the session's uid first. Names are text in the ``"C"``
collation (compared byte by byte: quicker, and the same on every server); JSON
documents are ``json`` (kept exactly as written, as they come back). A table
``th_version`` holds the schema version; each version so far only adds, so
``CREATE ... IF NOT EXISTS`` upgrades an older schema in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from .settings import quote_ident

__all__ = ["SCHEMA_VERSION", "TABLES", "Sql", "plan_read", "statements"]

SCHEMA_VERSION = 2
"""1: the first tables; 2: ``th_first`` (each trigger's first firing)."""

TABLES = ("th_sessions", "th_tasks", "th_index", "th_fired", "th_states", "th_waiting",
          "th_instances", "th_keys", "th_active", "th_first")
"""Every table that holds sessions, each keyed by the uid."""

_DDL = """
CREATE TABLE IF NOT EXISTS {s}.th_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.th_sessions (
    uid NAME PRIMARY KEY, counted INTEGER NOT NULL DEFAULT 0,
    unresolved INTEGER NOT NULL DEFAULT 0, metadata JSON NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS {s}.th_tasks (
    uid NAME, name NAME, pos INTEGER NOT NULL, unless JSON NOT NULL DEFAULT '[]',
    config JSON NOT NULL, PRIMARY KEY (uid, name));
CREATE TABLE IF NOT EXISTS {s}.th_index (
    uid NAME, trigger NAME, pos INTEGER NOT NULL, task NAME, PRIMARY KEY (uid, trigger, pos));
CREATE TABLE IF NOT EXISTS {s}.th_fired (
    uid NAME, trigger NAME, kwargs JSON NOT NULL, PRIMARY KEY (uid, trigger));
CREATE TABLE IF NOT EXISTS {s}.th_states (
    uid NAME, task NAME, state JSON NOT NULL, PRIMARY KEY (uid, task));
CREATE TABLE IF NOT EXISTS {s}.th_waiting (
    uid NAME, task NAME, missing INTEGER NOT NULL, PRIMARY KEY (uid, task));
CREATE TABLE IF NOT EXISTS {s}.th_instances (
    seq BIGINT GENERATED ALWAYS AS IDENTITY, uid NAME, name NAME, data JSON NOT NULL,
    PRIMARY KEY (uid, name));
CREATE INDEX IF NOT EXISTS th_instances_order ON {s}.th_instances (uid, seq);
CREATE TABLE IF NOT EXISTS {s}.th_keys (
    uid NAME, key NAME, record JSON NOT NULL, PRIMARY KEY (uid, key));
CREATE TABLE IF NOT EXISTS {s}.th_active (uid NAME PRIMARY KEY, work INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.th_first (
    uid NAME, trigger NAME, record JSON NOT NULL, PRIMARY KEY (uid, trigger))
""".replace(" NAME", ' TEXT COLLATE "C" NOT NULL')
"""Schema version 2. (``NAME``: a name column.)"""

_CONFIG_ROW = "t.name, t.config, st.state, w.missing"
_CONFIG_JOINS = ("LEFT JOIN {s}.th_states st ON st.uid = t.uid AND st.task = t.name "
                 "LEFT JOIN {s}.th_waiting w ON w.uid = t.uid AND w.task = t.name")


@dataclass(frozen=True, slots=True)
class Sql:
    """The statements of one schema. Parameters go by name (the writes' names differ, so that
    a commit joins them in one statement), in binary (no quoting of text and arrays to do)."""

    ddl: list[str]
    version: str
    set_version: list[str]
    lock: str
    trigger_tasks: str
    tasks: str
    all_tasks: str
    kwargs: str
    states: str
    missing: str
    instances: str
    key: str
    firsts: str
    put_fired: str
    put_firsts: str
    put_instances: str
    put_states: str
    count_down: str
    put_key: str
    put_work: str
    drop_work: str
    put_session: str
    configure: list[str]
    clear: list[str]
    load_tasks: str
    load_states: str
    load_instances: str
    load_kwargs: str
    load_metadata: str
    load_firsts: str
    session_uids: str
    active: str


def _upsert(table: str, key: str, value: str, param: str) -> str:
    """Insert or replace many ``(key, value)`` rows of a session, in array order (the arrays:
    parameters ``<param>`` and ``<param>_json``)."""
    return (f"INSERT INTO {{s}}.{table} (uid, {key}, {value}) "
            f"SELECT %(uid)b, k, v::json FROM unnest(%({param})b::text[], "
            f"%({param}_json)b::text[]) "
            f"WITH ORDINALITY AS u(k, v, n) ORDER BY n "
            f"ON CONFLICT (uid, {key}) DO UPDATE SET {value} = excluded.{value}")


@cache
def statements(schema: str) -> Sql:
    """The statements for the tables in ``schema`` (made once per schema)."""
    s = quote_ident(schema)

    def q(text: str) -> str:
        return text.replace("{s}", s)

    by_uid = "WHERE uid = %(uid)b"
    return Sql(
        ddl=[q(part.strip()) for part in _DDL.split(";") if part.strip()],
        version=q("SELECT version FROM {s}.th_version"),
        set_version=[q("DELETE FROM {s}.th_version"),
                     q("INSERT INTO {s}.th_version (version) VALUES (%(version)b)")],
        lock="SELECT pg_advisory_xact_lock(%(lock)b), pg_current_xact_id()::text",
        trigger_tasks=q(f"SELECT {_CONFIG_ROW} FROM {{s}}.th_index i JOIN {{s}}.th_tasks t "
                        f"ON t.uid = i.uid AND t.name = i.task {_CONFIG_JOINS} "
                        "WHERE i.uid = %(uid)b AND i.trigger = %(trigger)b ORDER BY i.pos"),
        tasks=q(f"SELECT {_CONFIG_ROW} FROM {{s}}.th_tasks t {_CONFIG_JOINS} "
                "WHERE t.uid = %(uid)b AND t.name = ANY(%(names)b::text[])"),
        all_tasks=q(f"SELECT {_CONFIG_ROW} FROM {{s}}.th_tasks t {_CONFIG_JOINS} "
                    "WHERE t.uid = %(uid)b ORDER BY t.pos"),
        kwargs=q("SELECT trigger, kwargs FROM {s}.th_fired WHERE uid = %(uid)b "
                 "AND trigger = ANY(%(names)b::text[])"),
        states=q("SELECT task, state FROM {s}.th_states WHERE uid = %(uid)b "
                 "AND task = ANY(%(names)b::text[])"),
        missing=q("SELECT missing FROM {s}.th_waiting WHERE uid = %(uid)b AND task = %(task)b"),
        instances=q("SELECT name, data FROM {s}.th_instances WHERE uid = %(uid)b "
                    "AND name = ANY(%(names)b::text[])"),
        key=q("SELECT record FROM {s}.th_keys WHERE uid = %(uid)b AND key = %(key)b"),
        firsts=q("SELECT trigger, record FROM {s}.th_first WHERE uid = %(uid)b "
                 "AND trigger = ANY(%(names)b::text[])"),
        put_fired=q(_upsert("th_fired", "trigger", "kwargs", "fired")),
        put_firsts=q("INSERT INTO {s}.th_first (uid, trigger, record) SELECT %(uid)b, k, v::json "
                     "FROM unnest(%(firsts)b::text[], %(firsts_json)b::text[]) AS u(k, v) "
                     "ON CONFLICT (uid, trigger) DO NOTHING"),
        put_instances=q(_upsert("th_instances", "name", "data", "instances")),
        put_states=q(_upsert("th_states", "task", "state", "states")),
        count_down=q("UPDATE {s}.th_waiting w SET missing = w.missing - d.n FROM "
                     "unnest(%(first)b::text[], %(first_counts)b::int[]) AS d(task, n) "
                     "WHERE w.uid = %(uid)b AND w.task = d.task"),
        put_key=q("INSERT INTO {s}.th_keys (uid, key, record) VALUES (%(uid)b, %(key)b, "
                  "%(record)b::json)"),
        put_work=q("INSERT INTO {s}.th_active (uid, work) VALUES (%(uid)b, %(work)b) "
                   "ON CONFLICT (uid) DO UPDATE SET work = excluded.work"),
        drop_work=q("DELETE FROM {s}.th_active WHERE uid = %(uid)b"),
        put_session=q("INSERT INTO {s}.th_sessions (uid, counted, unresolved, metadata) "
                      "VALUES (%(uid)b, %(counted)b, %(unresolved)b, %(metadata)b::json) "
                      "ON CONFLICT (uid) DO UPDATE SET counted = excluded.counted, "
                      "unresolved = excluded.unresolved, metadata = excluded.metadata"),
        configure=[
            q("DELETE FROM {s}.th_waiting " + by_uid),
            q("DELETE FROM {s}.th_tasks " + by_uid),
            q("DELETE FROM {s}.th_index " + by_uid),
            q("INSERT INTO {s}.th_waiting (uid, task, missing) SELECT %(uid)b, k, n FROM "
              "unnest(%(waiting)b::text[], %(counts)b::int[]) AS u(k, n)"),
            q("INSERT INTO {s}.th_tasks (uid, name, pos, unless, config) SELECT %(uid)b, k, "
              "n - 1, u::json, c::json FROM unnest(%(names)b::text[], %(unless)b::text[], "
              "%(configs)b::text[]) WITH ORDINALITY AS r(k, u, c, n)"),
            q("INSERT INTO {s}.th_index (uid, trigger, pos, task) SELECT %(uid)b, t, p, k FROM "
              "unnest(%(triggers)b::text[], %(positions)b::int[], %(tasks)b::text[]) "
              "AS u(t, p, k)"),
        ],
        clear=[q(f"DELETE FROM {{s}}.{table} " + by_uid) for table in TABLES],
        load_tasks=q("SELECT name, config FROM {s}.th_tasks WHERE uid = %(uid)b ORDER BY pos"),
        load_states=q("SELECT task, state FROM {s}.th_states " + by_uid),
        load_instances=q("SELECT name, data FROM {s}.th_instances WHERE uid = %(uid)b "
                         "ORDER BY seq"),
        load_kwargs=q("SELECT trigger, kwargs FROM {s}.th_fired " + by_uid),
        load_metadata=q("SELECT metadata FROM {s}.th_sessions " + by_uid),
        load_firsts=q("SELECT trigger, record FROM {s}.th_first " + by_uid),
        session_uids=q("SELECT uid FROM {s}.th_sessions ORDER BY uid"),
        active=q("SELECT uid FROM {s}.th_active WHERE work > 0 ORDER BY uid"),
    )


_TASK_ROW = ("t.name, t.config, st.state, w.missing, {pos} FROM {{s}}.th_tasks t "
             "LEFT JOIN {{s}}.th_states st ON st.uid = t.uid AND st.task = t.name "
             "LEFT JOIN {{s}}.th_waiting w ON w.uid = t.uid AND w.task = t.name")
_READS = {
    # kind: what one row of that kind is (columns: kind, name, doc, state, n1, n2)
    "session": "SELECT 'S'::text, NULL::text, metadata, NULL::json, counted, unresolved "
               "FROM {s}.th_sessions WHERE uid = %(uid)b",
    "finalized": "SELECT 'F', NULL, NULL, NULL, NULL, NULL FROM {s}.th_fired "
                 "WHERE uid = %(uid)b AND trigger = 'sessionFinalized'",
    "work": "SELECT 'W', NULL, NULL, NULL, work, NULL FROM {s}.th_active WHERE uid = %(uid)b",
    "trigger": "SELECT 'T', " + _TASK_ROW.format(pos="i.pos").replace(
        "FROM {s}.th_tasks t", "FROM {s}.th_index i JOIN {s}.th_tasks t "
        "ON t.uid = i.uid AND t.name = i.task") + " WHERE i.uid = %(uid)b "
        "AND i.trigger = %(trigger)b",
    "fired": "SELECT 'K', trigger, kwargs, NULL, NULL, NULL FROM {s}.th_fired "
             "WHERE uid = %(uid)b AND trigger = ANY (ARRAY(SELECT %(trigger)b::text UNION ALL "
             "SELECT json_array_elements_text(t.unless) FROM {s}.th_index i JOIN {s}.th_tasks t "
             "ON t.uid = i.uid AND t.name = i.task WHERE i.uid = %(uid)b "
             "AND i.trigger = %(trigger)b))",
    "tasks": "SELECT 'C', " + _TASK_ROW.format(pos="t.pos") + " WHERE t.uid = %(uid)b "
             "AND t.name = ANY(%(tasks)b::text[])",
    "instances": "SELECT 'I', name, data, NULL, NULL, NULL FROM {s}.th_instances "
                 "WHERE uid = %(uid)b AND name = ANY(%(instances)b::text[])",
    "all": "SELECT 'A', " + _TASK_ROW.format(pos="t.pos") + " WHERE t.uid = %(uid)b",
    "names": "SELECT 'N', trigger, NULL, NULL, NULL, NULL FROM {s}.th_fired WHERE uid = %(uid)b",
    "key": "SELECT 'R', NULL, record, NULL, NULL, NULL FROM {s}.th_keys "
           "WHERE uid = %(uid)b AND key = %(key)b",
}


@cache
def plan_read(schema: str, trigger: bool, instances: bool, full: bool, key: bool) -> str:
    """One statement that reads all a plan names, row by row tagged with what it is:
    ``S`` the session's counters and metadata, ``F`` finalized, ``W`` its count of
    scheduled and running instances, ``T`` the tasks a trigger concerns (``n2``: their
    place in the index) and ``K`` the kwargs of that trigger and of their ``unless``
    triggers, ``C`` the tasks named (for the instances), ``I`` the instances, ``A`` every
    task, ``N`` the name of every trigger fired, ``R`` a fire key's record. Columns:
    kind, name, doc, state, n1, n2 (tasks: config, state, missing triggers, position)."""
    parts = ["session", "finalized", "work"]
    parts += ["trigger", "fired"] if trigger else []
    parts += ["tasks", "instances"] if instances else []
    parts += ["all", "names"] if full else []
    parts += ["key"] if key else []
    s = quote_ident(schema)
    return " UNION ALL ".join(_READS[part].replace("{s}", s) for part in parts)
