"""Sessions in Redis: shared by every process on every server, one transition per round trip.

A transition computes its change in Python (:mod:`triggerhooks.engine`) against
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
import itertools
import os
import random
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import orjson

from ..exceptions import ConflictError, StorageUnavailableError
from ..models import RESOLVED, SESSION_FINALIZED, TaskConfig, TaskInstance, split_instance_name
from ..serialization import JsonDict, dumps, loads
from .base import Changes, Commit, Compute, Plan, SessionView, StorageBackend, TaskState, build_index
from .redis_scripts import TRANSACT

if TYPE_CHECKING:
    import redis as redis_py

__all__ = ["REDIS_PREFIX_ENV", "REDIS_URL_ENV", "RedisStorageBackend"]

REDIS_URL_ENV = "TRIGGERHOOKS_REDIS_URL"
REDIS_PREFIX_ENV = "TRIGGERHOOKS_REDIS_PREFIX"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PREFIX = "triggerhooks"

_SUFFIXES = ("cfg", "idx", "kw", "ts", "tv", "inst", "meta")
_INLINE_LIMIT = 4096
"""Kwargs up to this many bytes come with a read; longer ones only when a task needs them."""
_OUR_QUERY = ("prefix", "ttl")
_SCRIPT_SHA = hashlib.sha1(TRANSACT.encode()).hexdigest()
_CACHED_SESSIONS = 256
"""Sessions whose facts a process keeps per client (least recently used ones are dropped)."""
_CACHED_FACTS = 2048
"""Facts of one kind a process keeps per session; past that they are forgotten and read again."""
_CACHED_KWARGS = 512
"""Kwargs up to this many bytes are kept with what a process knows; longer ones are read again."""

T = TypeVar("T")


def _strip_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=user + host))


def _redact(url: str) -> str:
    from . import redact_url

    return redact_url(url)


def _escape(uid: str) -> str:
    """``uid`` as a hash tag body: no braces, and distinct uids never collide."""
    return quote(uid, safe="")


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


@dataclass
class _Facts:
    """What is known of (part of) a session, each fact with what the commit checks it by.

    ``configs`` and ``index`` hold under ``cv``; ``states`` and ``instances``
    carry the version of their task's state; a fired trigger stays fired; a
    trigger's kwargs are checked by content, an unfired trigger by presence.
    """

    cv: bytes = b""
    configs: dict[str, TaskConfig | None] = field(default_factory=dict)
    index: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    states: dict[str, tuple[int, TaskState]] = field(default_factory=dict)
    fired: dict[str, bytes | int | None] = field(default_factory=dict)
    instances: dict[str, tuple[int, bytes | None]] = field(default_factory=dict)


_configs: dict[tuple[str, bytes], TaskConfig] = {}


def _config(name: str, raw: bytes) -> TaskConfig:
    """A stored configuration, parsed once per process (configurations rarely change)."""
    key = (name, raw)
    config = _configs.get(key)
    if config is None:
        if len(_configs) >= 4096:
            _configs.clear()
        config = _configs[key] = TaskConfig.from_json(name, loads(raw))
    return config


def _parse_snapshot(plan: Plan, snap: list[Any]) -> tuple[_Facts, tuple[int, int, bool],
                                                          dict[str, TaskConfig] | None]:
    """The facts, the counters and (for a full plan) every configuration in a script's snapshot."""
    head = snap[0]
    facts = _Facts(cv=head[0] or b"")
    counters = (int(head[1] or 0), int(head[2] or 0), bool(snap[1]))
    if plan.full:
        configs, states, versions, fired, order = snap[2:]
        every = _ordered_configs(dict(zip(configs[::2], configs[1::2], strict=True)), order)
        facts.configs.update(every)
        numbers = {t.decode(): int(v) for t, v in zip(versions[::2], versions[1::2], strict=True)}
        for task, raw in zip(states[::2], states[1::2], strict=True):
            name = task.decode()
            facts.states[name] = (numbers.get(name, 0), TaskState.from_json(loads(raw)))
        for name in (*every, *numbers):  # a task without a stored state has none yet
            facts.states.setdefault(name, (numbers.get(name, 0), TaskState()))
        for trigger in fired:
            facts.fired[trigger.decode()] = 1
        for config in every.values():  # every other trigger had not fired at this read
            for trigger in config.triggers:
                facts.fired.setdefault(trigger, None)
        return facts, counters, every
    concerned, tasks, configs, states, versions, triggers, fired, instances = snap[2:]
    for task, config, state, version in zip(tasks, configs, states, versions, strict=True):
        name = task.decode()
        facts.configs[name] = None if config is None else _config(name, config)
        facts.states[name] = (int(version or 0),
                              TaskState() if state is None else TaskState.from_json(loads(state)))
    names = [t.decode() for t in triggers]
    for trigger, value in zip(names, fired, strict=True):
        facts.fired[trigger] = value
    if plan.trigger is not None:
        facts.index[plan.trigger] = ([t.decode() for t in tasks[:concerned]], names[:-1])
    for name, data in zip(plan.instances, instances, strict=True):
        task = split_instance_name(name)[0]
        facts.instances[name] = (facts.states[task][0], data)
    return facts, counters, None


def _ordered_configs(raw: Mapping[bytes, bytes], order: bytes | None) -> dict[str, TaskConfig]:
    names: list[str] = loads(order) if order else []
    known = set(names)
    names += sorted(n.decode() for n in raw if n.decode() not in known)
    configs = {}
    for name in names:
        data = raw.get(name.encode())
        if data is not None:
            configs[name] = _config(name, data)
    return configs


def _index_entries(configs: Mapping[str, TaskConfig]) -> dict[str, tuple[list[str], list[str]]]:
    """trigger -> (tasks it concerns, every trigger of those tasks): what a fire needs to know."""
    return {trigger: (tasks, sorted({t for task in tasks for t in configs[task].triggers}))
            for trigger, tasks in build_index(configs).items()}


class _SessionCache:
    """What this process learned of one session from earlier reads and commits.

    Stale facts are harmless: the commit checks every fact a transition used
    and answers a stale one with a fresh read.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.facts: _Facts | None = None

    def reset(self) -> None:
        with self.lock:
            self.facts = None

    def plan_facts(self, plan: Plan) -> _Facts | None:
        """The facts ``plan`` needs, if all of them are known."""
        if plan.full:
            return None
        with self.lock:
            known = self.facts
            if known is None:
                return None
            facts = _Facts(cv=known.cv)
            tasks: list[str] = []
            if plan.trigger is not None:
                entry = known.index.get(plan.trigger)
                if entry is None:
                    return None
                facts.index[plan.trigger] = entry
                tasks += entry[0]
                for trigger in (*entry[1], plan.trigger):
                    value = known.fired.get(trigger, _MISSING)
                    if value is _MISSING:
                        return None
                    facts.fired[trigger] = value
            for name in plan.instances:
                tasks.append(split_instance_name(name)[0])
            for task in tasks:
                config = known.configs.get(task, _MISSING)
                state = known.states.get(task)
                if config is _MISSING or state is None:
                    return None
                facts.configs[task] = config
                facts.states[task] = state
            for name in plan.instances:
                instance = known.instances.get(name)
                task = split_instance_name(name)[0]
                if instance is None or instance[0] != facts.states[task][0]:
                    return None
                facts.instances[name] = instance
            return facts

    def absorb(self, facts: _Facts) -> None:
        """Take in a fresh read."""
        with self.lock:
            known = self.facts
            if known is None or known.cv != facts.cv:
                known = self.facts = _Facts(cv=facts.cv)
            known.configs.update(facts.configs)
            known.index.update(facts.index)
            for trigger, value in facts.fired.items():
                known.fired[trigger] = _kept(value)
            for task, state in facts.states.items():
                if known.states.get(task, (None,))[0] != state[0]:
                    for name in [n for n in known.instances if n.rpartition("#")[0] == task]:
                        del known.instances[name]
                known.states[task] = state
            for name, instance in facts.instances.items():
                self._keep(known, name, instance)
            _trim(known)

    def learn(self, read: _Facts, checked: Mapping[str, int], changes: Changes,
              new_cv: bytes, encoded: Mapping[str, bytes]) -> None:
        """Take in what a commit based on ``read`` wrote (``encoded``: the instances' JSON)."""
        with self.lock:
            known = self.facts
            if changes.configs is not None:
                if known is None:
                    known = self.facts = _Facts()
                known.cv = new_cv
                known.configs = dict(changes.configs)
                known.index = _index_entries(changes.configs)
                # A configuration is written after a full read, which saw every fired
                # trigger and every task state: what it did not see did not exist. Task
                # names and sessionFinalized are triggers too (cascades, finalization).
                for name, config in changes.configs.items():
                    known.states[name] = read.states.get(name) or (0, TaskState())
                    for trigger in (name, SESSION_FINALIZED, *config.triggers):
                        known.index.setdefault(trigger, ([], []))
                        known.fired[trigger] = _kept(read.fired.get(trigger))
            elif known is None or known.cv != read.cv:
                return
            elif new_cv:
                known.cv = new_cv
            for trigger, raw in changes.fired.items():
                known.fired[trigger] = _kept(raw)
            versions: dict[str, int] = {}
            for task, state in changes.states.items():
                if task in checked:
                    versions[task] = checked[task] + 1
                    known.states[task] = (versions[task], state)
                else:  # pragma: no cover - every written state was read first
                    known.states.pop(task, None)
            for name, instance in changes.instances.items():
                version = versions.get(instance.task_name)
                if version is None or instance.status in RESOLVED:
                    known.instances.pop(name, None)
                else:
                    known.instances[name] = (version, encoded[name])
            _trim(known)

    @staticmethod
    def _keep(known: _Facts, name: str, instance: tuple[int, bytes | None]) -> None:
        """Cache only instances that can still change: those are the ones transitions read."""
        data = instance[1]
        if data is None or loads(data)["status"] not in _RESOLVED_NAMES:
            known.instances[name] = instance
        else:
            known.instances.pop(name, None)


_RESOLVED_NAMES = frozenset(status.value for status in RESOLVED)


def _kept(value: bytes | int | None) -> bytes | int | None:
    """What a cache keeps of a trigger's kwargs: small ones, else only that it fired."""
    if isinstance(value, bytes) and len(value) > _CACHED_KWARGS:
        return len(value)
    return value


def _trim(known: _Facts) -> None:
    """Keep what a session's cache holds bounded; forgotten facts are simply read again."""
    for facts in (known.configs, known.index, known.fired, known.states, known.instances):
        if len(facts) > _CACHED_FACTS:
            facts.clear()


class _Client:
    """One redis-py client, its script and what this process knows of each session it saw."""

    def __init__(self, client: redis_py.Redis, url: str) -> None:
        self.redis = client
        self.url = url
        self._ids = itertools.count()
        self._id_base = secrets.token_hex(4)
        self._sessions: OrderedDict[str, _SessionCache] = OrderedDict()
        self._lock = threading.Lock()

    def txid(self) -> str:
        """A commit id unique to this client (random base and a counter), 16 characters."""
        return f"{self._id_base}{next(self._ids) & 0xFFFFFFFF:08x}"

    def run(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """EVALSHA, loading the script once per server when it answers NOSCRIPT."""
        from redis.exceptions import NoScriptError

        try:
            return self.redis.evalsha(_SCRIPT_SHA, len(keys), *keys, *args)
        except NoScriptError:
            self.redis.script_load(TRANSACT)
            return self.redis.evalsha(_SCRIPT_SHA, len(keys), *keys, *args)

    def session(self, key: str) -> _SessionCache:
        with self._lock:
            found = self._sessions.get(key)
            if found is None:
                found = self._sessions[key] = _SessionCache()
                if len(self._sessions) > _CACHED_SESSIONS:
                    self._sessions.popitem(last=False)
            else:
                self._sessions.move_to_end(key)
            return found


_clients: dict[tuple[int, str], _Client] = {}
_clients_lock = threading.Lock()


def _client_for_url(url: str) -> _Client:
    key = (os.getpid(), url)
    found = _clients.get(key)
    if found is None:
        with _clients_lock:
            found = _clients.get(key)
            if found is None:
                found = _clients[key] = _Client(_connect(url), url)
    return found


def _connect(url: str) -> redis_py.Redis:
    import redis as redis_py
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.retry import Retry

    query = dict(parse_qsl(urlsplit(url).query))
    options: dict[str, Any] = {}
    if "socket_connect_timeout" not in query:
        options["socket_connect_timeout"] = 5.0
    options["retry"] = Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.2), 3)
    try:
        return redis_py.Redis.from_url(url, **options)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid Redis URL {_redact(url)!r}: {exc}") from None


def _url_of(client: redis_py.Redis) -> str:
    """A URL (without password) that reaches the server ``client`` talks to."""
    from redis.connection import SSLConnection

    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    user = quote(kwargs["username"], safe="") + "@" if kwargs.get("username") else ""
    if kwargs.get("path"):
        return f"unix://{user}{kwargs['path']}?db={kwargs.get('db', 0)}"
    scheme = "rediss" if issubclass(pool.connection_class, SSLConnection) else "redis"
    host, port, db = kwargs.get("host", "127.0.0.1"), kwargs.get("port", 6379), kwargs.get("db", 0)
    return f"{scheme}://{user}{host}:{port}/{db}"


class _View(SessionView):
    """A transition's view: known facts, then lazy reads for anything outside them.

    Records every answer the transition's outcome can depend on, so that the
    commit can check that none of it changed in the meantime.
    """

    def __init__(self, backend: RedisStorageBackend, facts: _Facts, fresh: bool,
                 all_configs: dict[str, TaskConfig] | None = None,
                 counters: tuple[int, int, bool] = (0, 0, False)) -> None:
        self.backend = backend
        self.facts = facts
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
        config = configs.get(name, _MISSING)
        if config is _MISSING:
            if self.full:
                config = None
            else:
                raw = self._fetch(lambda p: p.hget(self.backend.keys[0], name))[0]
                config = None if raw is None else _config(name, raw)
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
            self.all = _ordered_configs(raw, order)
        return self.all

    def fired(self, trigger: str) -> bool:
        fired = self.facts.fired
        value = fired.get(trigger, _MISSING)
        if value is _MISSING:
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
        value = fired.get(trigger, _MISSING)
        if value is _MISSING and self.full:
            value = fired[trigger] = None
        if value is _MISSING or (value is not None and not isinstance(value, bytes)):
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
        known = self.facts.instances.get(name)
        if known is None:
            keys = self.backend.keys
            raw, version = self._fetch(lambda p: (p.hget(keys[5], name), p.hget(keys[4], task)))
            known = self.facts.instances[name] = (int(version or 0), raw)
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
        self._conn: _Client | None = None
        self._cache: _SessionCache | None = None
        if client is not None:
            if client.get_encoder().decode_responses:
                raise ValueError("RedisStorageBackend needs a client with decode_responses=False")
            self._conn = _Client(client, _url_of(client))
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
        return {"backend": self.name, "uid": self.uid, "url": _strip_password(self.url),
                "prefix": self.prefix, "ttl": self.ttl}

    @classmethod
    def from_reference(cls, reference: JsonDict) -> RedisStorageBackend:
        url: str = reference["url"]
        candidates = [known for _, known in list(_clients)]
        candidates.append(os.environ.get(REDIS_URL_ENV) or "")
        for known in candidates:
            if known and known != url and _strip_password(known) == url:
                url = known
                break
        return cls(reference["uid"], url, prefix=reference.get("prefix"),
                   ttl=reference.get("ttl"))

    # -- talking to Redis ------------------------------------------------------------------

    def _client(self) -> _Client:
        conn = self._conn
        if conn is None:
            conn = self._conn = _client_for_url(self.url)
        return conn

    def _session_cache(self) -> _SessionCache:
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
                f"Redis at {_redact(self.url)} is unavailable: {type(exc).__name__}: {exc}"
            ) from exc

    def _run(self, mode: str, plan: Plan, payload: Sequence[Any] = ()) -> list[Any]:
        conn = self._client()
        names = plan.instances
        args = [mode, _INLINE_LIMIT, int(plan.full), plan.trigger or "", len(names), *names,
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
            view = _View(self, facts, fresh=False)
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
            f"session {self.uid!r} at {_redact(self.url)} kept changing under this transition; "
            f"gave up after {self.max_attempts} attempts")

    def _fresh_view(self, plan: Plan, snapshot: list[Any], cache: _SessionCache) -> _View:
        facts, counters, every = _parse_snapshot(plan, snapshot)
        cache.absorb(facts)
        return _View(self, facts, fresh=True, all_configs=every, counters=counters)

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
            entries = _index_entries(configs)
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
        return _ordered_configs(raw, order)

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
        return f"<RedisStorageBackend uid={self.uid!r} url={_redact(self.url)!r}>"


def _created(instance: TaskInstance) -> str:
    """When an instance was created (its first timestamp), to list instances in creation order."""
    stamps = instance.metadata.get("timestamps")
    if isinstance(stamps, dict) and stamps:
        return str(min(stamps.values()))
    return ""

