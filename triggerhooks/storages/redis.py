"""Sessions in Redis: shared by every process on every server, one transition per round trip.

A transition computes its change in Python (:mod:`triggerhooks.core.rules`) against
what it knows of the part of the session its :class:`Plan` names, and commits
it with one script call that first checks that nothing it read has changed
(the versions of task states and instances, triggers seen as not fired, the
kwargs it used, the configuration). What it knows comes from a per-process
cache of what earlier transitions read and wrote, or, when that cache lacks
something, from a read in the same script (one more round trip). A failed
check answers with a fresh read, and the transition runs again on it. No
lock is held between calls, and nothing depends on how many instances a
session has.

``redis`` is imported on first use, so ``import triggerhooks`` stays fast.
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import orjson

from ..core.types import Changes, Commit, Compute, Plan, SessionView, TaskState
from ..exceptions import ConflictError, StorageUnavailableError
from ..models import SESSION_FINALIZED, TaskConfig, TaskInstance, split_instance_name
from ..serialization import JsonDict, dumps, loads
from .base import StorageBackend
from .redis_client import Client, client_for_url, clients, redact, strip_password, url_of
from .redis_facts import (
    INLINE_LIMIT,
    MISSING,
    Facts,
    SessionCache,
    index_entries,
    ordered_configs,
    parse_config,
    parse_snapshot,
)

if TYPE_CHECKING:
    import redis as redis_py

__all__ = ["REDIS_PREFIX_ENV", "REDIS_URL_ENV", "RedisStorageBackend"]

REDIS_URL_ENV = "TRIGGERHOOKS_REDIS_URL"
REDIS_PREFIX_ENV = "TRIGGERHOOKS_REDIS_PREFIX"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PREFIX = "triggerhooks"

_SUFFIXES = ("cfg", "idx", "kw", "ts", "tv", "inst", "meta")
_OUR_QUERY = ("prefix", "ttl")

T = TypeVar("T")


def _escape(uid: str) -> str:
    """``uid`` as a hash tag body: no braces, and distinct uids never collide."""
    return quote(uid, safe="")


class _View(SessionView):
    """A transition's view: known facts, then lazy reads for anything outside them.

    Records every answer the transition's outcome can depend on, so that the
    commit can check that none of it changed in the meantime.
    """

    def __init__(self, backend: RedisStorageBackend, facts: Facts, fresh: bool,
                 all_configs: dict[str, TaskConfig] | None = None,
                 counters: tuple[int, int, bool] = (0, 0, False),
                 cache: SessionCache | None = None) -> None:
        self.backend = backend
        self.facts = facts
        self.cache = cache
        """Where to look for an instance outside ``facts`` before asking Redis."""
        self.fresh = fresh
        """Read in one piece just now; a view built from the cache or that read lazily is not."""
        self.full = all_configs is not None
        self.all = all_configs
        self.counted, self.unresolved, self.finalized = counters
        self.checked: dict[str, int] = {}
        self.encoded: dict[str, bytes] = {}
        self.unfired: set[str] = set()
        self.kwargs_read: dict[str, bytes] = {}

    def _fetch(self, build: Callable[[Any], Any]) -> list[Any]:
        self.fresh = False
        client = self.backend._client().redis

        def run() -> list[Any]:
            pipe = client.pipeline(transaction=True)
            build(pipe)
            return list(pipe.execute())

        return self.backend._call(run)

    def _check(self, task: str, version: int) -> None:
        """Record that the outcome depends on ``task``'s state at ``version``."""
        if self.checked.setdefault(task, version) != version:
            self.checked[task] = -1  # read at two versions: the commit fails and reads afresh

    # -- SessionView ------------------------------------------------------------------------

    def task(self, name: str) -> TaskConfig | None:
        configs = self.facts.configs
        config = configs.get(name, MISSING)
        if config is MISSING:
            if self.full:
                config = None
            else:
                raw = self._fetch(lambda p: p.hget(self.backend.keys[0], name))[0]
                config = None if raw is None else parse_config(name, raw)
            configs[name] = config
        return config  # type: ignore[no-any-return]

    def tasks_for(self, trigger: str) -> Sequence[TaskConfig]:
        entry = self.facts.index.get(trigger)
        if entry is None:
            if self.all is not None:
                return [c for c in self.all.values() if trigger in c.triggers]
            raw = self._fetch(lambda p: p.hget(self.backend.keys[1], trigger))[0]
            tasks, related = loads(raw) if raw else ([], [])
            entry = self.facts.index[trigger] = (tasks, related)
        found = []
        for name in entry[0]:
            config = self.task(name)
            if config is not None:
                found.append(config)
        return found

    def all_tasks(self) -> Mapping[str, TaskConfig]:
        if self.all is None:
            keys = self.backend.keys
            raw, order = self._fetch(lambda p: (p.hgetall(keys[0]), p.hget(keys[6], "order")))
            self.all = ordered_configs(raw, order)
        return self.all

    def fired(self, trigger: str) -> bool:
        fired = self.facts.fired
        value = fired.get(trigger, MISSING)
        if value is MISSING:
            if self.full:
                value = None
            else:
                value = self._fetch(lambda p: p.hexists(self.backend.keys[2], trigger))[0] or None
            fired[trigger] = value
        if value is None:
            self.unfired.add(trigger)
            return False
        return True

    def kwargs(self, trigger: str) -> bytes | None:
        fired = self.facts.fired
        value = fired.get(trigger, MISSING)
        if value is MISSING and self.full:
            value = fired[trigger] = None
        if value is MISSING or (value is not None and not isinstance(value, bytes)):
            value = fired[trigger] = self._fetch(lambda p: p.hget(self.backend.keys[2], trigger))[0]
        if value is None:
            self.unfired.add(trigger)
            return None
        self.kwargs_read[trigger] = value
        return value  # type: ignore[no-any-return]

    def state(self, task: str) -> TaskState:
        states = self.facts.states
        known = states.get(task)
        if known is None:
            if self.full:
                known = (0, TaskState())
            else:
                keys = self.backend.keys
                raw, version = self._fetch(lambda p: (p.hget(keys[3], task), p.hget(keys[4], task)))
                known = (int(version or 0),
                         TaskState() if raw is None else TaskState.from_json(loads(raw)))
            states[task] = known
        self._check(task, known[0])
        return known[1]

    def instance(self, name: str) -> TaskInstance | None:
        task = split_instance_name(name)[0]
        instances = self.facts.instances
        known = instances.get(name)
        state = self.facts.states.get(task)
        if known is None and state is not None and self.cache is not None:
            known = self.cache.instance(name, state[0])
            if known is not None:
                instances[name] = known
        if known is None:
            # The engine reads a task's unresolved instances one after the other (to
            # schedule or abandon them): fetch them all at once.
            names = [name]
            if state is not None:
                names += [n for n in state[1].open if n != name and n not in instances][:999]
            keys = self.backend.keys
            found, version = self._fetch(lambda p: (p.hmget(keys[5], names), p.hget(keys[4], task)))
            for each, raw in zip(names, found, strict=True):
                instances[each] = (int(version or 0), raw)
            known = instances[name]
        self._check(task, known[0])
        return None if known[1] is None else TaskInstance.from_json(name, loads(known[1]))


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

    max_attempts: int = 100
    """How often a transition is tried against concurrent writers before :class:`ConflictError`."""
    backoff: tuple[float, float] = (0.0005, 0.05)
    """Base and cap, in seconds, of the jittered exponential wait after a conflict."""

    def __init__(self, uid: str, url: str | None = None, *, client: redis_py.Redis | None = None,
                 prefix: str | None = None, ttl: float | None = None,
                 max_attempts: int | None = None) -> None:
        super().__init__(uid)
        if url is not None and client is not None:
            raise ValueError("pass either url or client, not both")
        prefix = prefix if prefix is not None else os.environ.get(REDIS_PREFIX_ENV, DEFAULT_PREFIX)
        if "{" in prefix or "}" in prefix:
            raise ValueError(f"a Redis key prefix cannot contain braces: {prefix!r}")
        if ttl is not None and ttl <= 0:
            raise ValueError(f"ttl must be a positive number of seconds, not {ttl!r}")
        self.prefix = prefix
        self.ttl = ttl
        self._ttl_ms = "" if ttl is None else str(max(1, round(ttl * 1000)))
        if max_attempts is not None:
            if max_attempts < 1:
                raise ValueError(f"max_attempts must be at least 1, not {max_attempts!r}")
            self.max_attempts = max_attempts
        tag = f"{{{_escape(uid)}}}"
        base = f"{prefix}:{tag}:" if prefix else f"{tag}:"
        self.keys: tuple[str, ...] = tuple(base + suffix for suffix in _SUFFIXES)
        self._conn: Client | None = None
        self._cache: SessionCache | None = None
        if client is not None:
            if client.get_encoder().decode_responses:
                raise ValueError("RedisStorageBackend needs a client with decode_responses=False")
            self._conn = Client(client, url_of(client))
            self.url = self._conn.url
        else:
            self.url = url or os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL

    # -- construction --------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, uid: str, **options: Any) -> RedisStorageBackend:
        """A storage at ``url``; its query may also carry ``prefix`` and ``ttl`` (seconds)."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        for key, value in query:
            if key == "prefix":
                options.setdefault("prefix", value)
            elif key == "ttl":
                options.setdefault("ttl", float(value))
        rest = urlencode([(k, v) for k, v in query if k not in _OUR_QUERY])
        return cls(uid, urlunsplit(parts._replace(query=rest)), **options)

    def reference(self) -> JsonDict:
        """The session's address without any password: a worker takes the password from a
        client of its own process with the same address, or from ``$TRIGGERHOOKS_REDIS_URL``."""
        return {"backend": self.name, "uid": self.uid, "url": strip_password(self.url),
                "prefix": self.prefix, "ttl": self.ttl}

    @classmethod
    def from_reference(cls, reference: JsonDict) -> RedisStorageBackend:
        url: str = reference["url"]
        candidates = [known for _, known in list(clients)]
        candidates.append(os.environ.get(REDIS_URL_ENV) or "")
        for known in candidates:
            if known and known != url and strip_password(known) == url:
                url = known
                break
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
            cache = self._cache = self._client().session(self.keys[0])
        return cache

    def _call(self, fn: Callable[[], T]) -> T:
        from redis.exceptions import RedisError

        try:
            return fn()
        except RedisError as exc:
            raise StorageUnavailableError(
                f"Redis at {redact(self.url)} is unavailable: {type(exc).__name__}: {exc}"
            ) from exc

    def _run(self, mode: str, plan: Plan, payload: Sequence[Any] = ()) -> list[Any]:
        conn = self._client()
        names = plan.instances
        args = [mode, INLINE_LIMIT, int(plan.full), plan.trigger or "", len(names), *names,
                *(split_instance_name(name)[0] for name in names), *payload]
        reply: list[Any] = self._call(lambda: conn.run(self.keys, args))
        return reply

    # -- transitions ---------------------------------------------------------------------------

    def transact(self, plan: Plan, compute: Compute) -> Commit:
        cache = self._session_cache()
        txid = self._client().txid()
        view: _View | None = None
        facts = cache.plan_facts(plan)
        if facts is not None:
            view = _View(self, facts, fresh=False, cache=cache)
        base, cap = self.backoff
        for attempt in range(self.max_attempts):
            if view is None:
                view = self._fresh_view(plan, self._run("r", plan)[1], cache)
            try:
                changes = compute(view)
            except Exception:
                # An error computed from facts that may be stale is only the caller's to
                # see when they are all still true.
                if view.fresh:
                    raise
                reply = self._run("v", plan, self._payload(view, Changes(), ""))
                if reply[0] != b"conflict":
                    raise
                view = self._fresh_view(plan, reply[2], cache)
                continue
            if changes.is_empty and view.fresh:
                return Commit(changes, view.unresolved, view.counted, view.finalized)
            new_cv = b""
            if changes.configs is not None or not view.facts.cv:
                new_cv = secrets.token_hex(8).encode()
            mode = "v" if changes.is_empty else "c"
            reply = self._run(mode, plan, self._payload(view, changes, txid, new_cv))
            status = reply[0]
            if status == b"ok":
                if mode == "c":
                    cache.learn(view.facts, view.checked, changes, new_cv, view.encoded)
                return Commit(changes, int(reply[2]), int(reply[1]), bool(reply[3]))
            if status == b"done":  # our own earlier attempt landed; its reply was lost
                cache.reset()
                return Commit(changes, int(reply[2]), int(reply[1]), bool(reply[3]))
            if view.fresh:  # someone else wrote in between: give them a moment
                time.sleep(random.uniform(0, min(cap, base * 2 ** attempt)))
            view = self._fresh_view(plan, reply[2], cache)
        raise ConflictError(
            f"session {self.uid!r} at {redact(self.url)} kept changing under this transition; "
            f"gave up after {self.max_attempts} attempts")

    def _fresh_view(self, plan: Plan, snapshot: list[Any], cache: SessionCache) -> _View:
        facts, counters, every = parse_snapshot(plan, snapshot)
        cache.absorb(facts)
        return _View(self, facts, fresh=True, all_configs=every, counters=counters, cache=cache)

    def _payload(self, view: _View, changes: Changes, txid: str, new_cv: bytes = b"") -> list[Any]:
        """What the script checks and writes. Encodes everything first, so a value that
        cannot be stored raises before anything is sent."""
        instances = [(name, dumps(inst.to_json(), f"instance {name}"))
                     for name, inst in changes.instances.items()]
        view.encoded = dict(instances)
        metadata = [(f"m:{key}", dumps(value, f"session metadata {key!r}"))
                    for key, value in (changes.metadata or {}).items()]
        configs = changes.configs
        args: list[Any] = [
            txid, view.facts.cv, new_cv, "1" if configs is not None else "", self._ttl_ms,
            changes.unresolved_delta,
            "" if changes.counted is None else changes.counted,
            "" if changes.unresolved is None else changes.unresolved,
            len(view.checked)]
        for task, version in view.checked.items():
            args += (task, version)
        args.append(len(view.unfired))
        args += view.unfired
        args.append(len(view.kwargs_read))
        for trigger, value in view.kwargs_read.items():
            args += (trigger, hashlib.sha1(value).hexdigest())
        args.append(len(changes.fired))
        for pair in changes.fired.items():
            args += pair
        args.append(len(instances))
        for pair in instances:
            args += pair
        args.append(len(changes.states))
        for task, state in changes.states.items():
            args += (task, orjson.dumps(state.to_json()))
        args.append(len(metadata))
        for pair in metadata:
            args += pair
        if configs is not None:
            args.append(len(configs))
            for name, config in configs.items():
                args += (name, dumps(config.to_json(), f"configuration of task {name}"))
            entries = index_entries(configs)
            args.append(len(entries))
            for trigger, entry in entries.items():
                args += (trigger, orjson.dumps(entry))
            args.append(orjson.dumps(list(configs)))
        return args

    # -- reading -------------------------------------------------------------------------------

    def _pipeline(self, build: Callable[[Any], Any]) -> list[Any]:
        client = self._client().redis

        def run() -> list[Any]:
            pipe = client.pipeline(transaction=True)
            build(pipe)
            return list(pipe.execute())

        return self._call(run)

    def _load_tasks(self) -> dict[str, TaskConfig]:
        keys = self.keys
        raw, order = self._pipeline(lambda p: (p.hgetall(keys[0]), p.hget(keys[6], "order")))
        return ordered_configs(raw, order)

    def _hgetall(self, key: str) -> dict[bytes, bytes]:
        client = self._client().redis
        return cast("dict[bytes, bytes]", self._call(lambda: client.hgetall(key)))

    def _load_states(self) -> dict[str, TaskState]:
        raw = self._hgetall(self.keys[3])
        return {task.decode(): TaskState.from_json(loads(state)) for task, state in raw.items()}

    def _load_instances(self, names: Sequence[str] | None = None) -> dict[str, TaskInstance]:
        if names is None:
            keys = self.keys
            raw, order = self._pipeline(lambda p: (p.hgetall(keys[5]), p.hget(keys[6], "order")))
            positions = {name: pos for pos, name in enumerate(loads(order) if order else [])}
            instances = [TaskInstance.from_json(n.decode(), loads(d)) for n, d in raw.items()]
            instances.sort(key=lambda i: (_created(i), positions.get(i.task_name, len(positions)),
                                          i.task_name, i.index))
            return {instance.name: instance for instance in instances}
        wanted = list(dict.fromkeys(names))
        client = self._client().redis
        found: list[bytes | None] = []
        for start in range(0, len(wanted), 1000):
            chunk = wanted[start:start + 1000]
            found += cast("list[bytes | None]",
                          self._call(lambda: client.hmget(self.keys[5], chunk)))  # noqa: B023
        return {name: TaskInstance.from_json(name, loads(data))
                for name, data in zip(wanted, found, strict=True) if data is not None}

    def _load_kwargs(self) -> dict[str, JsonDict]:
        raw = self._hgetall(self.keys[2])
        return {trigger.decode(): loads(value) for trigger, value in raw.items()}

    def _load_metadata(self) -> JsonDict:
        raw = self._hgetall(self.keys[6])
        return {key.decode()[2:]: loads(value) for key, value in raw.items()
                if key.startswith(b"m:")}

    def clear(self) -> None:
        self._call(lambda: self._client().redis.delete(*self.keys))
        self._session_cache().reset()

    @property
    def is_finalized(self) -> bool:
        found = self._call(lambda: self._client().redis.hexists(self.keys[2], SESSION_FINALIZED))
        return bool(found)

    def __repr__(self) -> str:
        return f"<RedisStorageBackend uid={self.uid!r} url={redact(self.url)!r}>"


def _created(instance: TaskInstance) -> str:
    """When an instance was created (its first timestamp), to list instances in creation order."""
    stamps = instance.metadata.get("timestamps")
    if isinstance(stamps, dict) and stamps:
        return str(min(stamps.values()))
    return ""

