"""A transition's view of a Redis session: the facts it was given, then lazy reads."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from ...core.types import SessionView, TaskState
from ...models import TaskConfig, TaskInstance, split_instance_name
from ...serialization import loads
from .cache import SessionCache
from .client import Build, Client
from .facts import MISSING, Facts, ordered_configs, parse_config, parse_entry
from .protocol import Head, SessionKeys

__all__ = ["RedisView", "load_configs"]

T = TypeVar("T")

_NO_HEAD = Head(b"", 0, 0, False)


def load_configs(pipeline: Callable[[Build], list[Any]], keys: SessionKeys) -> dict[str, TaskConfig]:
    """Every configuration of the session, in its task order, read in one round trip."""
    raw, order = pipeline(lambda p: (p.hgetall(keys.cfg), p.hget(keys.meta, "order")))
    return ordered_configs(raw, order)


class RedisView(SessionView):
    """Known facts, then a read for anything outside them.

    Records every answer the transition's outcome can depend on, so that the
    commit can check that none of it changed in the meantime.
    """

    def __init__(self, client: Client, keys: SessionKeys, facts: Facts, *,
                 fresh: bool, head: Head = _NO_HEAD,
                 all_configs: dict[str, TaskConfig] | None = None,
                 cache: SessionCache | None = None, recorded: str | None = None,
                 provisional: bytes | None = None) -> None:
        self.client = client
        self.keys = keys
        self.facts = facts
        self.cache = cache
        """Where to look for an instance outside ``facts`` before asking Redis."""
        self.fresh = fresh
        """Read in one piece just now; a view built from the cache or that read lazily is not."""
        self.from_cache = not fresh
        """Built from what this process knew: kwargs it reads may be stale, so the commit
        checks them. (Kwargs read from Redis during the transition may change before the
        commit only by a concurrent firing, which may as well have come after it.)"""
        self.head = head
        """The counters read with a fresh view."""
        self.full = all_configs is not None
        self.all = all_configs
        self.checked: dict[str, int] = {}
        """Task -> the version of its state (of how many instances it has) that was read."""
        self.instances_read: dict[str, bytes | None] = {}
        """Instance -> the JSON the outcome depends on (``None``: it did not exist)."""
        self.encoded: dict[str, bytes] = {}
        """Instance -> the JSON its commit wrote."""
        self.unfired: set[str] = set()
        self.kwargs_read: dict[str, bytes] = {}
        self._read_here: set[str] = set()
        """Triggers whose kwargs this view read from Redis (so they need no check)."""
        self.missing_read: dict[str, int] = {}
        """Task -> the count of missing triggers the outcome depends on."""
        self.recorded_trigger = recorded
        """The trigger whose firing the script recorded before this view was read."""
        self.provisional = provisional
        """The record the script stored with that firing under the plan's fire key: this
        transition's own, so not a repeat (the engine writes the record it means)."""

    def _fetch(self, build: Build) -> list[Any]:
        self.fresh = False
        return self.client.pipeline(build)

    def _hget(self, key: str, field: str) -> Any:
        return self._fetch(lambda p: p.hget(key, field))[0]

    def _known(self, facts: dict[str, Any], key: str, read: Callable[[], Any]) -> Any:
        """``facts[key]``; else absent if this view holds a full read, else ``read()``."""
        value = facts.get(key, MISSING)
        if value is MISSING:
            value = facts[key] = None if self.full else read()
        return value

    def _check(self, task: str, version: int) -> None:
        """Record that the outcome depends on ``task``'s state at ``version``."""
        if self.checked.setdefault(task, version) != version:
            self.checked[task] = -1  # read at two versions: the commit fails and reads afresh

    # -- SessionView ------------------------------------------------------------------------

    def task(self, name: str) -> TaskConfig | None:
        config: TaskConfig | None = self.facts.configs.get(name, MISSING)
        if config is MISSING:
            config = self._known(self.facts.configs, name, lambda: self._config(name))
        return config

    def _config(self, name: str) -> TaskConfig | None:
        raw = self._hget(self.keys.cfg, name)
        return None if raw is None else parse_config(name, raw)

    def tasks_for(self, trigger: str) -> Sequence[TaskConfig]:
        entry = self.facts.index.get(trigger)
        if entry is None:
            if self.all is not None:
                return [c for c in self.all.values() if trigger in c.triggers]
            entry = self.facts.index[trigger] = parse_entry(self._hget(self.keys.idx, trigger))
        found = []
        for name in entry.tasks:
            config = self.task(name)
            if config is not None:
                found.append(config)
        return found

    def all_tasks(self) -> Mapping[str, TaskConfig]:
        if self.all is None:
            self.all = load_configs(self._fetch, self.keys)
        return self.all

    def fired(self, trigger: str) -> bool:
        value = self.facts.fired.get(trigger, MISSING)
        if value is MISSING:
            keys = self.keys
            value = self._known(self.facts.fired, trigger,
                                lambda: self._fetch(lambda p: p.hexists(keys.kw, trigger))[0] or None)
        if value is None:
            self.unfired.add(trigger)
            return False
        return True

    def kwargs(self, trigger: str) -> bytes | None:
        fired = self.facts.fired
        value = fired.get(trigger, MISSING)
        if value is MISSING or (value is not None and not isinstance(value, bytes)):
            self.prefetch((trigger,))  # not known, or known only to have fired
            value = fired[trigger]
        if value is None:
            self.unfired.add(trigger)
            return None
        if self.from_cache and trigger not in self._read_here:
            self.kwargs_read[trigger] = value
        return value  # type: ignore[no-any-return]

    def prefetch(self, triggers: Iterable[str]) -> None:
        """Read the kwargs of those of ``triggers`` this view lacks, in one round trip."""
        fired = self.facts.fired
        wanted = []
        for trigger in triggers:
            value = fired.get(trigger, MISSING)
            if value is MISSING and self.full:
                fired[trigger] = None  # a full read saw every fired trigger
            elif value is MISSING or (value is not None and not isinstance(value, bytes)):
                wanted.append(trigger)
        if wanted:
            keys = self.keys
            found = self._fetch(lambda p: p.hmget(keys.kw, wanted))[0]
            for trigger, value in zip(wanted, found, strict=True):
                fired[trigger] = value
            self._read_here.update(wanted)

    def first(self, trigger: str) -> bytes | None:
        value = self.facts.firsts.get(trigger, MISSING)
        if value is MISSING or isinstance(value, int):
            self.prefetch_first((trigger,))
            value = self.facts.firsts[trigger]
        return value  # type: ignore[no-any-return]

    def prefetch_first(self, triggers: Iterable[str]) -> None:
        """Read the first firings of those of ``triggers`` this view lacks, and whether
        those it does not know fired, in one round trip."""
        firsts, fired = self.facts.firsts, self.facts.fired
        wanted = [t for t in triggers
                  if (value := firsts.get(t, MISSING)) is MISSING or isinstance(value, int)]
        if not wanted:
            return
        unknown = [t for t in wanted if fired.get(t, MISSING) is MISSING and not self.full]
        keys = self.keys
        found = self._fetch(lambda p: (p.hmget(keys.fst, wanted),
                                       *([p.hmget(keys.kw, unknown)] if unknown else [])))
        firsts.update(zip(wanted, found[0], strict=True))
        if unknown:
            fired.update(zip(unknown, found[1], strict=True))
            self._read_here.update(unknown)

    def state(self, task: str) -> TaskState:
        states = self.facts.states
        known = states.get(task)
        if known is None:
            if self.full:
                known = (0, TaskState())
            else:
                keys = self.keys
                raw, version = self._fetch(lambda p: (p.hget(keys.ts, task), p.hget(keys.tv, task)))
                known = (int(version or 0),
                         TaskState() if raw is None else TaskState.from_json(loads(raw)))
            states[task] = known
        self._check(task, known[0])
        return known[1]

    def missing(self, task: str) -> int | None:
        count = self.facts.missing.get(task, MISSING)
        if count is MISSING:
            raw = self._known(self.facts.missing, task, lambda: self._hget(self.keys.mc, task))
            count = self.facts.missing[task] = None if raw is None else int(raw)
        if count is not None:
            self.missing_read.setdefault(task, count)
        return count  # type: ignore[no-any-return]

    def recorded(self, trigger: str) -> bool:
        return trigger == self.recorded_trigger

    def fire_record(self, key: str) -> bytes | None:
        """The plan's key's record as read or known (one this process does not know is
        taken as not recorded: the commit checks that it still is)."""
        record = self.facts.keys.get(key)
        return None if record == self.provisional else record

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
            known = self._read_instances(name, task, state)
        self.instances_read.setdefault(name, known[1])
        return None if known[1] is None else TaskInstance.from_json(name, loads(known[1]))

    def _read_instances(self, name: str, task: str,
                        state: tuple[int, TaskState] | None) -> tuple[int, bytes | None]:
        """Read ``name`` with the other unresolved instances of its task: the rules read
        those one after the other (to schedule or abandon them)."""
        instances = self.facts.instances
        names = [name]
        if state is not None:
            names += [n for n in state[1].open if n != name and n not in instances][:999]
        keys = self.keys
        found, version = self._fetch(lambda p: (p.hmget(keys.inst, names), p.hget(keys.tv, task)))
        for each, raw in zip(names, found, strict=True):
            instances[each] = (int(version or 0), raw)
        return instances[name]
