"""The Redis storage backend: construction, transitions (retried on conflict) and readers."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, cast
from urllib.parse import quote, unquote

import orjson

from ...core.types import Changes, Commit, Compute, Plan, TaskState, first_record
from ...exceptions import (
    ConflictError,
    InstanceNotFoundError,
    InvalidSettingError,
    StorageUnavailableError,
)
from ...models import (
    SESSION_FINALIZED,
    Firing,
    TaskConfig,
    TaskInstance,
    split_instance_name,
    utcnow,
)
from ...serialization import JsonDict, dumps, kwargs_digest, loads
from ..base import StorageBackend, check_page
from ..urls import STORAGE_URL_ENV, redact_url, strip_password, url_scheme
from .cache import SessionCache
from .client import Client, Writer, client_for_url, clients, give_back, take_writer, url_of
from .facts import bumps_version, index_entries, read_facts
from .protocol import (
    NO_STAMP,
    Busy,
    Checks,
    CommitHeader,
    Conflict,
    Mode,
    Passed,
    SessionKeys,
    Snapshot,
    Stamp,
    Turn,
    Writes,
    active_key,
    commit_args,
    commit_reply,
    plan_args,
    read_reply,
    record_args,
    record_reply,
    settle_reply,
)
from .settings import (
    check_prefix,
    check_url,
    complete_url,
    parse_ttl,
    split_options,
    withholds_secret,
)
from .view import RedisView, load_configs
from .wire import ScriptCall

if TYPE_CHECKING:
    import redis as redis_py

__all__ = ["DEFAULT_PREFIX", "DEFAULT_REDIS_URL", "REDIS_PREFIX_ENV", "REDIS_URL_ENV",
           "RedisStorageBackend"]

REDIS_URL_ENV = "TRIGGERHOOKS_REDIS_URL"
REDIS_PREFIX_ENV = "TRIGGERHOOKS_REDIS_PREFIX"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PREFIX = "triggerhooks"

_OUR_QUERY = ("prefix", "ttl")
_CHUNK = 1000
"""Instances per HMGET when reading many."""
CHECKED_KWARGS = 32
"""A transition computed on what this process knew that read more kwargs than this (a
fan-in became ready) is computed again on a fresh read, which needs no check of them."""


class RedisStorageBackend(StorageBackend):
    """Sessions in Redis, shared by every process that reaches the server.

    Connect with ``url`` (``redis://``, ``rediss://`` for TLS, ``unix://``;
    default ``$TRIGGERHOOKS_REDIS_URL``, else ``redis://127.0.0.1:6379/0``) or
    an existing ``client`` (a ``redis.Redis`` with ``decode_responses=False``).
    Keys start with ``prefix`` (default ``$TRIGGERHOOKS_REDIS_PREFIX``, else
    ``triggerhooks``) and share the session's hash tag, so a session lives in
    one Redis Cluster slot. With ``ttl`` (seconds) every write gives the whole
    session that long to live again; an expired session is gone.
    """

    name = "redis"
    url_schemes: ClassVar[tuple[str, ...]] = ("redis", "rediss", "unix")
    supports_fire_keys = True

    max_attempts: int | None = None
    """How often a transition is tried against concurrent writers before
    :class:`ConflictError`; ``None`` (the default): as long as Redis answers, which the
    session's turn (below) makes finite."""
    turn_after: int = 3
    """Conflicts after which a writer takes the session's turn: other writers then wait
    until it has committed, so a writer loses at most this many times in a row."""
    turn_ms: int = 500
    """How long a turn lasts at most (a writer that died holding it keeps nobody waiting
    longer)."""
    backoff: tuple[float, float] = (0.0005, 0.02)
    """Base and cap, in seconds, of the jittered exponential wait after a conflict."""

    def __init__(self, uid: str, url: str | None = None, *, client: redis_py.Redis | None = None,
                 prefix: str | None = None, ttl: float | None = None,
                 max_attempts: int | None = None) -> None:
        super().__init__(uid)
        if url is not None and client is not None:
            raise InvalidSettingError("pass either url or client, not both")
        prefix = check_prefix(
            prefix if prefix is not None else os.environ.get(REDIS_PREFIX_ENV, DEFAULT_PREFIX))
        ttl = parse_ttl(ttl)
        self.prefix = prefix
        self.ttl = ttl
        self._ttl_ms = "" if ttl is None else str(max(1, round(ttl * 1000)))
        self._turn = Turn("", self.turn_ms, self._ttl_ms)
        """A transition's turn until it takes the session's (no token)."""
        self._read_turn = Turn(ttl_ms=self._ttl_ms)
        """The turn of a call that takes none."""
        if max_attempts is not None:
            if max_attempts < 1:
                raise InvalidSettingError(f"max_attempts must be at least 1, not {max_attempts!r}")
            self.max_attempts = max_attempts
        self.keys = SessionKeys.of(prefix, uid)
        self.active_key = active_key(prefix)
        """The set, shared by every session under the prefix, of those with work scheduled or
        running (see :meth:`active_sessions`)."""
        self._script = ScriptCall(tuple(map(str.encode, (*self.keys, self.active_key))))
        self._conn: Client | None = None
        self._cache: SessionCache | None = None
        if client is not None:
            if client.get_encoder().decode_responses:
                raise InvalidSettingError(
                    "RedisStorageBackend needs a client with decode_responses=False")
            self._conn = Client(client, url_of(client))
            self.url = self._conn.url
        else:
            self.url = check_url(url or os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL)

    # -- construction --------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, uid: str, **options: Any) -> RedisStorageBackend:
        """A storage at ``url``; its query may also carry ``prefix`` and ``ttl`` (seconds)."""
        rest, ours = split_options(url, _OUR_QUERY)
        if "prefix" in ours:
            options.setdefault("prefix", ours["prefix"])
        if "ttl" in ours:
            options.setdefault("ttl", parse_ttl(ours["ttl"], f" (?ttl= in URL {redact_url(url)!r})"))
        return cls(uid, rest, **options)

    def reference(self) -> JsonDict:
        """The session's address without any secret (``secretWithheld`` says one was left
        out): a worker completes it with a URL of its own (see
        :mod:`triggerhooks.storages.redis.settings`)."""
        reference: JsonDict = {"backend": self.name, "uid": self.uid,
                               "url": strip_password(self.url), "prefix": self.prefix,
                               "ttl": self.ttl}
        kwargs = self._conn.redis.connection_pool.connection_kwargs if self._conn else {}
        if withholds_secret(self.url, kwargs.get("password")):
            reference["secretWithheld"] = True
        return reference

    @classmethod
    def from_reference(cls, reference: JsonDict) -> RedisStorageBackend:
        candidates = [known for _, known in list(clients)]
        candidates.append(os.environ.get(REDIS_URL_ENV) or "")
        with contextlib.suppress(InvalidSettingError):
            storage_url = os.environ.get(STORAGE_URL_ENV) or ""
            if url_scheme(storage_url) in cls.url_schemes:
                candidates.append(cls.from_url(storage_url, reference["uid"]).url)
        url = complete_url(reference["url"], bool(reference.get("secretWithheld")), candidates)
        return cls(reference["uid"], url, prefix=reference.get("prefix"),
                   ttl=reference.get("ttl"))

    # -- talking to Redis ------------------------------------------------------------------

    def _client(self) -> Client:
        conn = self._conn
        if conn is None:
            conn = self._conn = client_for_url(self.url)
        return conn

    def _session_cache(self) -> SessionCache:
        cache = self._cache
        if cache is None:
            cache = self._cache = self._client().session(self.keys.cfg)
        return cache

    def _call_script(self, mode: str, plan: Plan, payload: Sequence[Any] = (),
                     turn: Turn | None = None) -> list[Any]:
        """One script call (see :mod:`.protocol`); its raw reply."""
        reply: list[Any] = self._client().run(
            self._script, plan_args(mode, plan, turn or self._read_turn, payload))
        return reply

    # -- transitions ---------------------------------------------------------------------------

    def transact(self, plan: Plan, compute: Compute) -> Commit:
        """Compute and commit, in one round trip when this process knows the planned part,
        two when it must read it first; a conflict costs a round trip and a recomputation.

        A firing (:attr:`Plan.record`) this process knows nothing of is recorded first and
        computed on what the same round trip read: one round trip when it makes nothing
        ready, and no conflict with other writers.

        A writing call that ends in a Redis error raises :class:`StorageUnavailableError`
        with ``committed``: whether that call was applied (``None``: the server stayed out
        of reach for about a second and a half)."""
        if plan.instances and not all(map(_is_instance_name, plan.instances)):
            # A name that cannot be an instance's (a task named "a#b" asked about) names
            # nothing to read: the rules find no such instance, as on any store.
            plan = replace(plan, instances=tuple(filter(_is_instance_name, plan.instances)))
        writer = take_writer()
        try:
            return self._transact(plan, compute, writer)
        finally:
            give_back(writer)

    def _transact(self, plan: Plan, compute: Compute, writer: Writer) -> Commit:
        cache = self._session_cache()
        turn = self._turn
        if turn.ms != self.turn_ms:
            turn = self._turn = Turn("", self.turn_ms, self._ttl_ms)
        view, computed = self._first_view(plan, compute, cache, turn, writer)
        turns = [turn]
        try:
            return self._commit(plan, compute, cache, view, computed, writer, turns)
        except BaseException:
            if turns[-1].token:  # held the turn: give it back rather than let it time out
                with contextlib.suppress(StorageUnavailableError):
                    self._call_script(Mode.RELEASE, Plan(), (), turns[-1])
            raise

    def _first_view(self, plan: Plan, compute: Compute, cache: SessionCache, turn: Turn,
                    writer: Writer) -> tuple[RedisView | None, Changes | None]:
        """A view on what this process knows, with the changes computed on it; or the
        firing recorded and read; or nothing (to be read)."""
        facts = cache.plan_facts(plan)
        view = None if facts is None else RedisView(
            self._client(), self.keys, facts, fresh=False, cache=cache)
        computed = None
        if view is not None:
            computed = _computed(compute, view)
            if computed is None or len(view.kwargs_read) > CHECKED_KWARGS:
                view, computed = None, None
        if view is None and plan.record is not None and plan.trigger is not None:
            view = self._record(plan, plan.record, cache, turn, writer)
        return view, computed

    def _commit(self, plan: Plan, compute: Compute, cache: SessionCache, view: RedisView | None,
                computed: Changes | None, writer: Writer, turns: list[Turn]) -> Commit:
        """Commit, computing again on a fresh read after each conflict; after
        :attr:`turn_after` conflicts with the session's turn (appended to ``turns``)."""
        turn = turns[-1]
        recorded, provisional = (None, None) if view is None else (view.recorded_trigger,
                                                                   view.provisional)
        conflicts = 0
        while self.max_attempts is None or conflicts < self.max_attempts:
            if view is None:
                view = self._fresh_view(plan, read_reply(self._call_script(Mode.READ, plan), plan),
                                        cache)
            outcome = self._attempt(plan, compute, view, writer, cache, turn, computed)
            computed = None
            if isinstance(outcome, Commit):
                return outcome
            if isinstance(outcome, Busy):
                self._wait_turn()
                continue
            conflicts += 1
            if outcome.what.startswith("instance "):
                cache.forget(outcome.what.removeprefix("instance "))
            if conflicts >= self.turn_after and not turn.token:
                turn = turn._replace(token=secrets.token_hex(8))
                turns.append(turn)
            elif view.fresh:  # someone else wrote in between: give them a moment
                self._back_off(conflicts)
            view = self._fresh_view(plan, outcome.snapshot, cache, recorded, provisional)
        raise ConflictError(
            f"session {self.uid!r} at {redact_url(self.url)} kept changing under this transition; "
            f"gave up after {self.max_attempts} attempts")

    def _record(self, plan: Plan, kwargs: bytes, cache: SessionCache, turn: Turn,
                writer: Writer) -> RedisView:
        """Record the plan's firing (with a keyed firing, its key's provisional record) and
        read what the rules need, in one round trip."""
        provisional = None if plan.key is None else _provisional_record(plan, kwargs)
        while True:
            stamp = writer.stamp()
            raw = self._write(Mode.RECORD, plan, record_args(stamp, kwargs, _utcnow(), provisional),
                              turn, writer, stamp)
            reply = record_reply(raw, plan)
            if not isinstance(reply, Busy):
                break
            self._wait_turn()
        if not reply.recorded:
            return self._fresh_view(plan, reply.snapshot, cache)
        return self._fresh_view(plan, reply.snapshot, cache, plan.trigger, provisional, kwargs)

    def _write(self, mode: Mode, plan: Plan, payload: Sequence[Any], turn: Turn,
               writer: Writer, stamp: Stamp) -> list[Any]:
        """A writing call; when it ends in a Redis error, raise one that tells whether it
        was applied (and keep a writer whose call may still land out of the pool)."""
        writer.settled = False
        try:
            reply = self._call_script(mode, plan, payload, turn)
        except StorageUnavailableError as exc:
            committed = self._settle(stamp)
            writer.settled = committed is not None
            outcome = {True: "the change was stored", False: "nothing was stored",
                       None: "whether the change was stored is unknown"}[committed]
            error = StorageUnavailableError(f"{exc}; {outcome}")
            error.committed = committed
            raise error from exc.__cause__
        writer.settled = True
        return reply

    def _settle(self, stamp: Stamp) -> bool | None:
        """Whether the call stamped ``stamp`` was applied (if not, it never will be);
        ``None`` when the server cannot be reached."""
        args = plan_args(Mode.SETTLE, Plan(), self._read_turn, (stamp.arg,))
        reply = self._client().probe(self._script.keys, args)
        return None if reply is None else settle_reply(reply)

    @staticmethod
    def _wait_turn() -> None:
        """Another writer holds the turn: it commits within about a round trip."""
        time.sleep(random.uniform(0.0002, 0.001))

    def _attempt(self, plan: Plan, compute: Compute, view: RedisView, writer: Writer,
                 cache: SessionCache, turn: Turn, computed: Changes | None = None,
                 ) -> Commit | Conflict | Busy:
        """Compute on ``view`` (unless that was ``computed`` already) and commit; a conflict
        carries a fresh read to try again on."""
        changes = self._compute(plan, compute, view, turn, computed)
        if not isinstance(changes, Changes):
            return changes
        if changes.is_empty and view.fresh:
            head = view.head
            return Commit(changes, head.unresolved, head.counted, head.finalized)
        new_cv = b""
        if changes.configs is not None or not view.facts.cv:
            new_cv = secrets.token_hex(8).encode()
        mode = Mode.CHECK if changes.is_empty else Mode.COMMIT
        outcome = self._send(mode, plan, view, changes, writer if mode is Mode.COMMIT else None,
                             turn, new_cv)
        if not isinstance(outcome, Passed):
            return outcome
        if outcome.shifts:
            names = _renumber(changes, outcome.shifts)
            view.encoded = {names.get(name, name): raw for name, raw in view.encoded.items()}
        if outcome.replayed:  # our own earlier attempt landed; its reply was lost
            cache.reset()
        elif mode is Mode.COMMIT:
            cache.learn(view.facts, view.checked, changes, new_cv, view.encoded)
        return Commit(changes, outcome.unresolved, outcome.counted, outcome.finalized)

    def _compute(self, plan: Plan, compute: Compute, view: RedisView, turn: Turn,
                 computed: Changes | None) -> Changes | Conflict | Busy:
        """The changes computed on ``view``; an error computed from facts that may be stale
        is only the caller's to see when they are all still true (else the conflict)."""
        try:
            changes = compute(view) if computed is None else computed
        except Exception:
            if view.fresh:
                raise
            outcome = self._send(Mode.CHECK, plan, view, Changes(), None, turn)
            if isinstance(outcome, Passed):
                raise
            return outcome
        if view.provisional is not None:
            _keep_provisional(changes, view.provisional)
        return changes

    def _back_off(self, attempt: int) -> None:
        base, cap = self.backoff
        time.sleep(random.uniform(0, min(cap, base * 2 ** min(attempt, 16))))

    def _fresh_view(self, plan: Plan, snapshot: Snapshot, cache: SessionCache,
                    recorded: str | None = None, provisional: bytes | None = None,
                    wrote: bytes | None = None) -> RedisView:
        facts, every = read_facts(plan, snapshot, wrote)
        cache.absorb(facts)
        # What this process knew of an instance may be stale at any version (other writers
        # change instances without creating one): a fresh view reads what it lacks.
        return RedisView(self._client(), self.keys, facts, fresh=True, head=snapshot.head,
                         all_configs=every, recorded=recorded, provisional=provisional)

    def _send(self, mode: Mode, plan: Plan, view: RedisView, changes: Changes,
              writer: Writer | None, turn: Turn, new_cv: bytes = b"") -> Passed | Conflict | Busy:
        """Check (and for :attr:`Mode.COMMIT`, with ``writer``, write) ``changes``. Encodes
        everything first, so a value that cannot be stored raises before anything is sent."""
        writes = self._writes(changes, view, plan.key is not None)
        view.encoded = dict(writes.instances)
        configured = changes.configs is not None
        stamp = NO_STAMP if writer is None else writer.stamp()
        header = CommitHeader(
            stamp.arg, view.facts.cv, new_cv, "1" if configured else "",
            sum(1 for value in view.facts.fired.values() if value is not None) if configured
            else "",
            "" if changes.counted is None or configured else changes.counted,
            "" if changes.unresolved is None or configured else changes.unresolved)
        first = changes.first_fired
        record = None if plan.key is None else view.facts.keys.get(plan.key)
        checks = Checks(
            None if plan.key is None else "" if record is None else hashlib.sha1(record).hexdigest(),
            {task: version for task, version in view.checked.items()
             if task in changes.depends_on
             or (_creates(view, changes, task) and _numbered(changes, task) is None)},
            {name: "" if raw is None else hashlib.sha1(raw).hexdigest()
             for name, raw in view.instances_read.items()},
            view.unfired,
            {trigger: hashlib.sha1(value).hexdigest() for trigger, value in view.kwargs_read.items()},
            {task: first.get(task, 0) for task, count in view.missing_read.items()
             if count - first.get(task, 0) > 0})
        args = commit_args(header, checks, writes)
        if writer is None:
            return commit_reply(self._call_script(mode, plan, args, turn), plan)
        return commit_reply(self._write(mode, plan, args, turn, writer, stamp), plan)

    @staticmethod
    def _writes(changes: Changes, view: RedisView, keyed: bool) -> Writes:
        writes = Writes(
            fired=changes.fired,
            firsts={trigger: first_record(changes.at, changes.fired[trigger])
                    for trigger in changes.new_triggers},
            first_fired=changes.first_fired,
            instances={name: dumps(inst.to_json(), f"instance {name}")
                       for name, inst in changes.instances.items()},
            metadata={f"m:{key}": dumps(value, f"session metadata {key!r}")
                      for key, value in (changes.metadata or {}).items()},
            states={task: orjson.dumps(_state_delta(view, changes, task, state))
                    for task, state in changes.states.items()},
            fire_record=None if not keyed else b"" if changes.fire_key is None
            else changes.fire_key[1])
        configs = changes.configs
        if configs is None:
            return writes
        return writes._replace(
            configs={name: dumps(config.to_json(), f"configuration of task {name}")
                     for name, config in configs.items()},
            trigger_index={trigger: orjson.dumps(list(entry))
                           for trigger, entry in index_entries(configs).items()},
            missing=changes.missing,
            order=orjson.dumps(list(configs)),
            counting=[name for name, config in configs.items()
                      if not config.waits_for_finalization])

    # -- reading -------------------------------------------------------------------------------

    def _load_tasks(self) -> dict[str, TaskConfig]:
        return load_configs(self._client().pipeline, self.keys)

    def _hgetall(self, key: str) -> dict[bytes, bytes]:
        client = self._client()
        return cast("dict[bytes, bytes]", client.call(lambda: client.redis.hgetall(key)))

    def _load_states(self) -> dict[str, TaskState]:
        raw = self._hgetall(self.keys.ts)
        return {task.decode(): TaskState.from_json(loads(state)) for task, state in raw.items()}

    def _load_instances(self, names: Sequence[str] | None = None) -> dict[str, TaskInstance]:
        if names is None:
            return self._all_instances()
        wanted = list(dict.fromkeys(names))
        client = self._client()
        found: list[bytes | None] = []
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start:start + _CHUNK]
            found += cast("list[bytes | None]",
                          client.call(lambda: client.redis.hmget(self.keys.inst, chunk)))  # noqa: B023
        return {name: TaskInstance.from_json(name, loads(data))
                for name, data in zip(wanted, found, strict=True) if data is not None}

    def _all_instances(self) -> dict[str, TaskInstance]:
        """Every instance, in creation order (then task order, name, index)."""
        keys = self.keys
        raw, order = self._client().pipeline(lambda p: (p.hgetall(keys.inst),
                                                        p.hget(keys.meta, "order")))
        positions = {name: pos for pos, name in enumerate(loads(order) if order else [])}
        instances = [TaskInstance.from_json(n.decode(), loads(d)) for n, d in raw.items()]
        instances.sort(key=lambda i: (_created(i), positions.get(i.task_name, len(positions)),
                                      i.task_name, i.index))
        return {instance.name: instance for instance in instances}

    def _load_kwargs(self) -> dict[str, JsonDict]:
        raw = self._hgetall(self.keys.kw)
        return {trigger.decode(): loads(value) for trigger, value in raw.items()}

    def _load_firsts(self, triggers: Sequence[str] | None = None) -> dict[str, bytes]:
        if triggers is None:
            return {t.decode(): raw for t, raw in self._hgetall(self.keys.fst).items()}
        wanted = list(triggers)
        if not wanted:
            return {}
        client = self._client()
        found = cast("list[bytes | None]",
                     client.call(lambda: client.redis.hmget(self.keys.fst, wanted)))
        return {t: raw for t, raw in zip(wanted, found, strict=True) if raw is not None}

    def _load_metadata(self) -> JsonDict:
        raw = self._hgetall(self.keys.meta)
        return {key.decode()[2:]: loads(value) for key, value in raw.items()
                if key.startswith(b"m:")}

    def clear(self) -> None:
        client = self._client()
        tag = self.keys.meta.rpartition("{")[2].partition("}")[0]

        def remove(pipe: Any) -> None:
            pipe.delete(*self.keys)
            pipe.srem(self.active_key, tag)

        client.pipeline(remove)
        self._session_cache().reset()

    def active_sessions(self) -> list[str]:
        """The sessions with an instance scheduled or running: the script keeps them in a set
        of the prefix (a session's count of such instances in ``meta``). Sessions that expired
        meanwhile are dropped from it here."""
        client = self._client()
        members = client.call(lambda: client.redis.smembers(self.active_key))
        tags = sorted(m.decode() if isinstance(m, bytes) else m for m in members)
        if not tags:
            return []
        metas = [SessionKeys.of(self.prefix, unquote(tag)).meta for tag in tags]
        alive = client.pipeline(lambda pipe: [pipe.exists(meta) for meta in metas])
        gone = [tag for tag, exists in zip(tags, alive, strict=True) if not exists]
        if gone:
            client.call(lambda: client.redis.srem(self.active_key, *gone))
        return [unquote(tag) for tag, exists in zip(tags, alive, strict=True) if exists]

    def session_uids(self) -> list[str]:
        """Every session under this storage's prefix on its server that holds anything
        (read with SCAN: other clients are never blocked, and a session written or cleared
        meanwhile may or may not be listed)."""
        base = f"{self.prefix}:{{" if self.prefix else "{"
        pattern = _glob_escape(base) + "*}:*"
        client = self._client()
        keys = client.call(lambda: list(client.redis.scan_iter(match=pattern, count=1000)))
        return sorted({uid for uid in (_uid_of(key, base) for key in keys) if uid is not None})

    def page_sessions(self, prefix: str = "", cursor: str | None = None,
                      limit: int = 50) -> tuple[list[str], str | None]:
        """A page of the sessions under this storage's prefix, in the server's order (each
        page sorted): SCAN with a cursor, so a page costs about the same among ten
        sessions or a million, and never blocks the server.

        A session is listed where SCAN meets its ``cfg`` key (its ``kw`` key when it has no
        configuration), so a walk lists it once. The cursor is SCAN's (where the batch the
        page ended in started) and the batch's last uid shown. As with
        :meth:`session_uids`, a session written or cleared meanwhile may or may not be
        listed, and while the server resizes its key table a session may be listed twice.
        """
        limit = check_page(prefix, cursor, limit)
        scan, count, shown = _read_cursor(cursor, limit)
        base = f"{self.prefix}:{{" if self.prefix else "{"
        pattern = _glob_escape(base + quote(prefix, safe="")) + "*}:[ck][fw]*"
        page: list[str] = []
        while True:
            following, candidates = self._scan_sessions(scan, count, pattern, base)
            room = limit - len(page)
            fresh = self._listed([c for c in candidates if shown is None or c[0] > shown],
                                 room + 1)
            if len(fresh) > room:  # the next page starts in this batch: the same SCAN again
                page += fresh[:room]
                return sorted(page), f"{scan}:{count}:{fresh[room - 1]}"
            page += fresh
            shown = None
            if following == 0:
                return sorted(page), None
            scan, count = following, min(count * 2, _SCAN_COUNT)  # sparse: look further
            if len(page) == limit:
                return sorted(page), f"{scan}:{count}:"

    def _scan_sessions(self, scan: int, count: int, pattern: str,
                       base: str) -> tuple[int, list[tuple[str, bytes | None]]]:
        """One SCAN step from ``scan``: the next cursor, and the sorted uids of the sessions
        whose ``cfg`` or ``kw`` key it met, each with the ``cfg`` key to look for when only
        its ``kw`` key was met (``None`` when its ``cfg`` key was)."""
        client = self._client()
        following, keys = client.call(
            lambda: client.redis.scan(cursor=scan, match=pattern, count=count))
        found: dict[str, bytes | None] = {}
        for key in keys:
            raw = key if isinstance(key, bytes) else key.encode()
            uid = _uid_of(raw, base)
            if uid is None:
                continue
            if raw.endswith(b"}:cfg"):
                found[uid] = None
            elif found.get(uid, b"") is not None:
                found[uid] = raw[:-len(b"kw")] + b"cfg"
        return int(following), sorted(found.items())

    def _listed(self, candidates: list[tuple[str, bytes | None]], wanted: int) -> list[str]:
        """The first ``wanted`` of ``candidates`` that this batch lists: those whose ``cfg``
        key it met, and those without one (asked in small pipelines, only as far as
        needed)."""
        found: list[str] = []
        client = self._client()
        start = 0
        while start < len(candidates) and len(found) < wanted:
            chunk = candidates[start:start + max(wanted - len(found), 8)]
            start += len(chunk)
            asked = [cfg for _, cfg in chunk if cfg is not None]

            def configured(keys: list[bytes] = asked) -> list[Any]:
                pipe = client.redis.pipeline(transaction=False)
                for cfg in keys:
                    pipe.exists(cfg)
                return pipe.execute()

            answers = dict(zip(asked, client.call(configured), strict=True)) if asked else {}
            found += [uid for uid, cfg in chunk if cfg is None or not answers[cfg]]
        return found[:wanted]

    @property
    def is_finalized(self) -> bool:
        client = self._client()
        return bool(client.call(lambda: client.redis.hexists(self.keys.kw, SESSION_FINALIZED)))

    def __repr__(self) -> str:
        return f"<RedisStorageBackend uid={self.uid!r} url={redact_url(self.url)!r}>"


_GLOB = str.maketrans({char: "\\" + char for char in "*?[]\\^"})
_HOLDING = frozenset(SessionKeys._fields) - {"meta", "turn"}
"""The parts of a session whose presence means it holds something (``meta`` may hold no
more than what writers left: see :class:`.protocol.Stamp`)."""


_SCAN_COUNT = 1000
"""The most keys one SCAN step of :meth:`RedisStorageBackend.page_sessions` looks at; the
first step of a page looks at about 16 per session wanted (a session has about ten keys),
and each further one at twice as many as the one before, up to this."""


def _read_cursor(cursor: str | None, limit: int) -> tuple[int, int, str | None]:
    """SCAN's cursor and count, and the last uid shown from that batch, from a page cursor
    (``"<scan>:<count>:<uid>"``); a page's first step for ``None``."""
    if cursor is None:
        return 0, min(max(16 * (limit + 1), 64), _SCAN_COUNT), None
    parts = cursor.split(":", 2)
    if len(parts) != 3 or not all(part.isdigit() and part.isascii() for part in parts[:2]) \
            or not 0 < int(parts[1]) <= _SCAN_COUNT:
        raise ValueError(f"{cursor!r} is not a page cursor of a Redis storage")
    return int(parts[0]), int(parts[1]), parts[2] or None


def _glob_escape(text: str) -> str:
    """``text`` as a SCAN pattern that matches only itself."""
    return text.translate(_GLOB)


def _uid_of(key: bytes, base: str) -> str | None:
    """The uid of the session ``key`` belongs to (``base``: what precedes the uid), if it
    is one of a session's keys that hold something."""
    name = key.decode("utf-8", "replace")
    tag, close, part = name[len(base):].partition("}:")
    if not name.startswith(base) or not close or part not in _HOLDING:
        return None
    uid = unquote(tag, errors="replace")
    return uid if uid and quote(uid, safe="") == tag else None


_second: tuple[int, str] = (-1, "")
"""The last second :func:`_utcnow` formatted, and its text up to the seconds."""


def _utcnow() -> str:
    """What :func:`~triggerhooks.models.utcnow` says, at a third of its cost: a record of a
    firing needs the time on every cold fire (the script keeps it with a trigger's first
    firing), and the date and time of day change once a second."""
    global _second
    second, micros = divmod(time.time_ns() // 1000, 1_000_000)
    known, text = _second
    if second != known:
        text = datetime.fromtimestamp(second, UTC).isoformat()[:-6]
        _second = (second, text)
    return f"{text}.{micros:06d}+00:00" if micros else f"{text}+00:00"


def _provisional_record(plan: Plan, kwargs: bytes) -> bytes:
    """The record the script stores with a keyed firing it records before the rules run;
    the engine's own replaces it when the firing scheduled anything."""
    return dumps({"trigger": plan.trigger, "kwargs": kwargs_digest(kwargs), "firedAt": utcnow(),
                  "scheduled": []})


def _keep_provisional(changes: Changes, provisional: bytes) -> None:
    """The engine's record of a firing the script recorded with a provisional one: the
    firing happened when it was recorded, so the record and the answer take that time; a
    record that then says what the provisional one says (nothing scheduled) is not written
    again, so that a keyed firing that readies nothing stays one round trip."""
    if changes.fire_key is None:
        return
    key, record = changes.fire_key
    ours, engine = loads(provisional), loads(record)
    if ours.get("trigger") != engine.get("trigger") or ours.get("kwargs") != engine.get("kwargs"):
        return
    fired_at = ours.get("firedAt")
    if isinstance(changes.result, Firing):
        changes.result = _firing(changes.result, fired_at=fired_at)
    if engine.get("scheduled"):
        changes.fire_key = (key, dumps({**engine, "firedAt": fired_at}))
    else:
        changes.fire_key = None


def _is_instance_name(name: str) -> bool:
    try:
        split_instance_name(name)
    except InstanceNotFoundError:
        return False
    return True


def _read_state(view: RedisView, task: str) -> TaskState:
    known = view.facts.states.get(task)
    return TaskState() if known is None else known[1]


def _creates(view: RedisView, changes: Changes, task: str) -> bool:
    """The transition creates an instance of ``task``, or makes one pending: it relied
    on what the task had (see :func:`.facts.bumps_version`)."""
    state = changes.states.get(task)
    return state is not None and bumps_version(_read_state(view, task), state)


def _numbered(changes: Changes, task: str) -> int | None:
    """The first of ``task``'s new instances that the script may renumber, if any: those
    of a transition that did not decide on the task's instances."""
    return None if task in changes.depends_on else changes.renumber.get(task)


def _renumber(changes: Changes, shifts: Mapping[str, int]) -> dict[str, str]:
    """Give the new instances the numbers the script gave them; return old -> new name."""
    names: dict[str, str] = {}

    def moved(name: str) -> str:
        task, _, index = name.rpartition("#")
        shift = shifts.get(task)
        if not shift or int(index) < changes.renumber[task]:
            return name
        new = names[name] = f"{task}#{int(index) + shift}"
        return new

    def renamed(instance: TaskInstance) -> TaskInstance:
        new = moved(instance.name)
        return instance if new == instance.name else replace(instance, name=new)

    changes.instances = {new.name: new for new in map(renamed, changes.instances.values())}
    for notice in changes.notices:
        notice.instance = renamed(notice.instance)
    changes.schedule = [(renamed(instance), config, countdown)
                        for instance, config, countdown in changes.schedule]
    for task, shift in shifts.items():
        state = changes.states[task]
        changes.states[task] = TaskState(
            state.next + shift, {moved(name): status for name, status in state.open.items()},
            {moved(name): level for name, level in state.logs.items()})
    _rename_firing(changes, names)
    return names


def _rename_firing(changes: Changes, names: Mapping[str, str]) -> None:
    """A keyed firing's record and answer name its scheduled instances as stored (the
    script renamed them in the record it stored; its bytes differ from these, which
    costs a repeat answered from this process's cache one more read, no more)."""
    if changes.fire_key is not None:
        key, raw = changes.fire_key
        record = loads(raw)
        record["scheduled"] = [names.get(name, name) for name in record.get("scheduled", ())]
        changes.fire_key = (key, dumps(record))
    if isinstance(changes.result, Firing):
        changes.result = _firing(changes.result, scheduled=tuple(
            names.get(name, name) for name in changes.result.scheduled))


def _firing(firing: Firing, *, fired_at: str | None = None,
            scheduled: tuple[str, ...] | None = None) -> Firing:
    """``firing`` with another time or other scheduled instances."""
    return Firing(firing.trigger_name, firing.key,
                  firing.fired_at if fired_at is None else fired_at,
                  firing.scheduled if scheduled is None else scheduled,
                  firing.repeated, firing.ignored)


def _state_delta(view: RedisView, changes: Changes, task: str, state: TaskState) -> JsonDict:
    """What the transition changed in ``task``'s state (see :attr:`Writes.states`)."""
    old = _read_state(view, task)
    delta: JsonDict = {}
    if state.next != old.next:
        delta["n"] = state.next
    if bumps_version(old, state):
        delta["v"] = 1
    if state.vacant != old.vacant:
        delta["e"] = state.vacant or False
    if state.blocked != old.blocked:
        delta["b"] = state.blocked
    delta.update(_renumbering(changes, task, state))
    # What changed is what the transition wrote, not a difference from what it read: that
    # may be stale (this process's cache), and an instance finished meanwhile must not
    # stay open.
    written = [name for name in changes.instances if name.rpartition("#")[0] == task]
    for key, entries, gone in (("o", state.open, "x"), ("l", state.logs, "y")):
        kept = {name: entries[name] for name in written if name in entries}
        if kept:
            delta[key] = kept
        dropped = [name for name in written if name not in entries]
        if dropped:
            delta[gone] = dropped
    config = view.task(task)
    if config is not None and not config.waits_for_finalization:
        delta["c"] = 1
    return delta


def _renumbering(changes: Changes, task: str, state: TaskState) -> JsonDict:
    """``r``: the first new instance of ``task`` the script may renumber, if any; with
    ``u`` when the transition found the task not blocked (the script checks it still is
    not: instances created for a task blocked meanwhile would wait forever)."""
    first = _numbered(changes, task)
    if first is None:
        return {}
    return {"r": first} if state.blocked is not None else {"r": first, "u": 1}


def _computed(compute: Compute, view: RedisView) -> Changes | None:
    """``compute`` on what this process knows; ``None`` when that raised (a fresh read
    decides whether the error is real)."""
    try:
        return compute(view)
    except Exception:
        return None


def _created(instance: TaskInstance) -> str:
    """When an instance was created (its first timestamp), to list instances in creation order."""
    stamps = instance.metadata.get("timestamps")
    if isinstance(stamps, dict) and stamps:
        return str(min(stamps.values()))
    return ""
