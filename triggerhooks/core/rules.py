"""The rules of a session, as pure transitions over a :class:`SessionView`.

Every public function here builds the :class:`Changes` of one atomic step
(a fire, a status change, a replay, ...). They read only through the view and
never write, so an optimistic backend can run them again after a conflict.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from ..exceptions import (
    ConfigurationError,
    FireKeyReusedError,
    InstanceNotFoundError,
    InvalidStatusError,
    Problem,
)
from ..models import (
    RESOLVED,
    SESSION_FINALIZED,
    Firing,
    TaskConfig,
    TaskInstance,
    TaskStatus,
    utcnow,
)
from ..serialization import JsonDict, dumps, kwargs_digest, loads
from .leases import Claim, Lease, after, claim_of
from .recovery import handed_again, stuck
from .types import Changes, Compute, Notice, SessionView, TaskState, read_first

__all__ = ["Transition", "cycle_problems", "transition"]

_UNSTARTED = TaskStatus.UNSTARTED
_SCHEDULED = TaskStatus.SCHEDULED
_RUNNING = TaskStatus.RUNNING
_OPEN_WORK = (_SCHEDULED, _RUNNING)
_VALUES = {status: status.value for status in TaskStatus}
_NOTICES = {TaskStatus.FINISHED: "completed", TaskStatus.FAILED: "failed",
            TaskStatus.ABANDONED: "abandoned", TaskStatus.SCHEDULED: "scheduled",
            _RUNNING: "started"}
"""The notice (and so the signal) a status set by hand or by a StatusChange announces."""


def _merge_params(kwargs: JsonDict, with_params: JsonDict) -> JsonDict:
    """``withParams`` under the trigger kwargs: trigger kwargs win, key by key."""
    for key, params in with_params.items():
        given = kwargs.get(key)
        if isinstance(given, dict) and isinstance(params, dict):
            kwargs[key] = {**params, **given}
        elif given is None:
            kwargs[key] = params
    return kwargs


def _cycles(configs: Mapping[str, TaskConfig]) -> list[list[str]]:
    """Cycles of tasks waiting on each other's cascades (they could never run)."""
    edges = {name: [t for t in (*c.after, *filter(None, [c.and_every])) if t in configs]
             for name, c in configs.items()}
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        """Depth first; ``path`` holds the tasks being visited (iteratively, no recursion
        limit: the stack holds each task's remaining children)."""
        stack = [(node, iter(edges[node]))]
        path.append(node)
        while stack:
            current, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                done.add(current)
            elif child in path:
                cycle = [*path[path.index(child):], child]
                if not any(set(cycle) == set(c) for c in found):
                    found.append(cycle)
            elif child not in done:
                stack.append((child, iter(edges[child])))
                path.append(child)

    for start in configs:
        if start not in done:
            visit(start, [])
    return found


def cycle_problems(merged: Mapping[str, TaskConfig],
                   changed: Collection[str]) -> list[Problem]:
    """A problem for each cycle of ``merged`` tasks that goes through a ``changed`` one."""
    return [Problem(cycle[0], "tasks wait for each other and could never run: "
                              + " -> ".join(cycle))
            for cycle in _cycles(merged) if any(name in changed for name in cycle)]


class Transition:
    """Builds one transition's changes against a view, copying state before changing it."""

    __slots__ = ("_before", "_decoded", "_now", "changes", "grace", "view")

    def __init__(self, view: SessionView, grace: float | None = None) -> None:
        self.view = view
        self.grace = grace
        """With a grace time (seconds), a stuck instance this transition reads is recovered
        (see :mod:`.recovery`)."""
        self.changes = Changes()
        self._now: str | None = None
        self._before: dict[str, bool] = {}
        self._decoded: dict[str, JsonDict] = {}

    @property
    def now(self) -> str:
        """The time of this transition (one for all its timestamps), taken when first needed."""
        if self._now is None:
            self._now = utcnow()
        return self._now

    # -- reading, with this transition's own changes on top ----------------------------

    def has_fired(self, trigger: str) -> bool:
        return trigger in self.changes.fired or self.view.fired(trigger)

    def kwargs_of(self, trigger: str) -> JsonDict:
        decoded = self._decoded.get(trigger)
        if decoded is not None:
            return decoded
        raw = self.changes.fired.get(trigger) or self.view.kwargs(trigger)
        return loads(raw) if raw else {}

    def peek_state(self, task: str) -> TaskState:
        """The task's state, to decide on (see :attr:`Changes.depends_on`)."""
        self.changes.depends_on.add(task)
        return self.changes.states.get(task) or self.view.state(task)

    def edit_state(self, task: str) -> TaskState:
        state = self.changes.states.get(task)
        if state is None:
            current = self.view.state(task)
            self._before[task] = current.is_resolved
            state = self.changes.states[task] = current.copy()
        return state

    def instance(self, name: str) -> TaskInstance:
        found = self.changes.instances.get(name)
        if found is not None:
            return found
        found = self.view.instance(name)
        if found is None:
            raise InstanceNotFoundError(f"no task instance named {name!r} in this session")
        if self.grace is not None and found.status in _OPEN_WORK:
            return self._recover(found, self.grace) or found
        return found

    def config_of(self, instance: TaskInstance) -> TaskConfig:
        config = self.view.task(instance.task_name)
        if config is None:
            raise InstanceNotFoundError(
                f"instance {instance.name!r} belongs to task {instance.task_name!r}, "
                "which is no longer configured")
        return config

    # -- writing -------------------------------------------------------------------------

    def put(self, instance: TaskInstance, status: TaskStatus, *,
            metadata: Mapping[str, Any] | None = None, kwargs: JsonDict | None = None,
            log_level: int | None = None, mark_logs_resolved: bool = False,
            notice: str | None = None, config: TaskConfig | None = None,
            extra: JsonDict | None = None) -> TaskInstance:
        """Write a new version of ``instance``, timestamping a status it had not."""
        meta = dict(instance.metadata)
        if metadata:
            meta.update(metadata)
        if status is not instance.status or "timestamps" not in meta:
            meta["timestamps"] = {**meta.get("timestamps", {}), _VALUES[status]: self.now}
        updated = TaskInstance(
            instance.name, status, instance.kwargs if kwargs is None else kwargs, meta,
            instance.log_level if log_level is None else log_level,
            mark_logs_resolved or instance.logs_marked_resolved)
        return self._record(updated, updated.name.rpartition("#")[0], notice, config, extra)

    def create(self, config: TaskConfig, status: TaskStatus, kwargs: JsonDict,
               metadata: JsonDict | None = None, notice: str | None = None,
               any_number: bool = False) -> TaskInstance:
        """A new instance of ``config``; ``timestamps["unstarted"]`` is when it was created.
        With ``any_number``, its number may change at the commit (see :attr:`Changes.renumber`)."""
        state = self.edit_state(config.name)
        name = f"{config.name}#{state.next}"
        if any_number:
            self.changes.renumber.setdefault(config.name, state.next)
        state.next += 1
        now = self.now
        stamps = {"unstarted": now} if status is _UNSTARTED else {
            "unstarted": now, _VALUES[status]: now}
        meta: JsonDict = {**metadata, "timestamps": stamps} if metadata else {"timestamps": stamps}
        return self._record(TaskInstance(name, status, kwargs, meta), config.name, notice, config)

    def _record(self, instance: TaskInstance, task: str, notice: str | None,
                config: TaskConfig | None, extra: JsonDict | None = None) -> TaskInstance:
        """Add ``instance`` to the changes and keep its task's bookkeeping in step."""
        name = instance.name
        self.changes.instances[name] = instance
        state = self.edit_state(task)
        if state.vacant == name and instance.status is not _UNSTARTED:
            state.vacant = None
        if instance.status in RESOLVED:
            state.open.pop(name, None)
        else:
            state.open[name] = _VALUES[instance.status]
        if instance.logs_resolved:
            state.logs.pop(name, None)
        else:
            state.logs[name] = instance.log_level
        if notice is not None:
            self.changes.notices.append(Notice(notice, instance, config, extra or {}))
        return instance

    def kwargs_for(self, config: TaskConfig, own: JsonDict, trigger: str | None = None) -> JsonDict:
        """What an instance created now holds: the latest kwargs of each of the task's
        ``requires`` that fired, and ``own`` (its ``andEvery`` firing's). ``trigger``: the
        one firing now (when it is the only one of them that fired, nothing else is read)."""
        fired = len(config.requires) - self.missing(config)
        if fired <= 0:
            return dict(own)
        if fired == 1 and trigger in config.required:
            return {trigger: self.kwargs_of(trigger), **own}
        if fired == len(config.requires):
            self.view.prefetch(config.requires)
            return {**{t: self.kwargs_of(t) for t in config.requires}, **own}
        self.view.prefetch(config.requires)
        return {**{t: self.kwargs_of(t) for t in config.requires if self.has_fired(t)}, **own}

    def first_kwargs(self, trigger: str) -> JsonDict:
        """The kwargs of the first firing of ``trigger``: what a waiting instance created
        before it fired received (the latest, when the store has no record of the first)."""
        if trigger in self.changes.new_triggers:
            return self.kwargs_of(trigger)
        record = self.view.first(trigger)
        return read_first(record)[1] if record is not None else self.kwargs_of(trigger)

    def applied(self, config: TaskConfig, instance: TaskInstance) -> JsonDict:
        """The kwargs a waiting instance holds: what it was created with (or given since),
        and for each trigger of ``requires`` that fired only after it was created, that
        trigger's first firing (stores apply later firings to waiting instances on read,
        so that a fire writes no instance it does not create or schedule)."""
        kwargs = instance.kwargs
        later = [t for t in config.requires if t not in kwargs]
        if not later:
            return kwargs
        self.view.prefetch_first(later)
        return {**kwargs, **{t: self.first_kwargs(t) for t in later if self.has_fired(t)}}

    def run_kwargs(self, config: TaskConfig, instance: TaskInstance) -> JsonDict:
        """What a waiting instance runs with: :meth:`applied`, ``withParams`` merged under."""
        kwargs = dict(self.applied(config, instance))
        return _merge_params(kwargs, config.with_params) if config.with_params else kwargs

    def schedule(self, config: TaskConfig, instance: TaskInstance) -> TaskInstance:
        """A waiting instance becomes ready: scheduled, with the kwargs it holds."""
        scheduled = self.put(instance, _SCHEDULED, kwargs=self.run_kwargs(config, instance),
                             notice="scheduled", config=config)
        self.changes.schedule.append((scheduled, config, 0.0))
        return scheduled

    def schedule_new(self, config: TaskConfig, kwargs: JsonDict | None = None,
                     countdown: float = 0.0, metadata: JsonDict | None = None) -> TaskInstance:
        """A new instance, scheduled at once (a task ready at its first firing, a replay)."""
        if kwargs is None:
            kwargs = self.kwargs_for(config, {})
            if config.with_params:
                kwargs = _merge_params(kwargs, config.with_params)
        if countdown > 0:  # a recovery counts its grace time from then
            metadata = {**(metadata or {}), "due": after(self.now, countdown)}
        scheduled = self.create(config, _SCHEDULED, kwargs, metadata, notice="scheduled")
        self.changes.schedule.append((scheduled, config, countdown))
        return scheduled

    def wait(self, config: TaskConfig, trigger: str | None = None, own: JsonDict | None = None,
             any_number: bool = False) -> TaskInstance:
        """A new waiting (``unstarted``) instance, holding what fired so far (``trigger``:
        the one firing now)."""
        return self.create(config, _UNSTARTED, self.kwargs_for(config, own or {}, trigger),
                           any_number=any_number)

    def abandon_pending(self, config: TaskConfig, reason: JsonDict) -> None:
        """The task can never run (``unless`` vetoed it, or ``reason["upstream"]`` was
        abandoned): abandon its instances that have not started, recording ``reason``; a
        task without any instance gets an abandoned ``#0``, so that it counts as resolved.
        Tasks that wait for this one and can therefore never run either follow, in this
        same transition."""
        work = [(config, reason)]
        while work:
            task, why = work.pop()
            first = self._abandon(task, why)
            if first is not None:
                work += self._stranded(task, first, why)

    def _abandon(self, config: TaskConfig, reason: JsonDict) -> str | None:
        """Abandon what of ``config`` has not started; the first instance abandoned."""
        state = self.peek_state(config.name)
        meta = {"abandoned": reason}
        if "upstream" in reason and state.blocked is None:
            self.edit_state(config.name).blocked = reason
        if state.next == 0:
            return self.create(config, TaskStatus.ABANDONED, {}, meta, notice="abandoned").name
        first = None
        for name in state.pending():
            # The instance itself decides: a store may answer the state from what it knew
            # (the commit checks the instance, not that list).
            instance = self.instance(name)
            if instance.can_abandon:
                kwargs = self.applied(config, instance) if instance.status is _UNSTARTED else None
                self.put(instance, TaskStatus.ABANDONED, metadata=meta, kwargs=kwargs,
                         notice="abandoned", config=config)
                first = first or name
        return first

    def _stranded(self, config: TaskConfig, abandoned: str,
                  reason: JsonDict) -> list[tuple[TaskConfig, JsonDict]]:
        """The tasks that wait for ``config``'s name (in ``after``) and can never run now
        that ``abandoned`` was: its name never fired and nothing of it is left to run."""
        state = self.peek_state(config.name)
        if state.open:
            return []
        if config.and_every is not None and state.blocked is None and not self._vetoed(config):
            return []  # a later andEvery firing brings an instance that may still run
        # Waiting for the name: in ``after``, or as the andEvery trigger (one instance per
        # finished instance of it: none will come).
        waiting = [task for task in self.view.tasks_for(config.name)
                   if config.name in task.required or task.and_every == config.name]
        if not waiting or self.has_fired(config.name):
            return []
        why = {**reason, "upstream": abandoned}
        return [(task, why) for task in waiting if self.peek_state(task.name).blocked is None]

    def _reason(self, config: TaskConfig, trigger: str | None = None) -> JsonDict:
        """Why a vetoed task is abandoned: the ``unless`` trigger that completed the veto."""
        return {"unless": trigger if trigger in config.unless else config.unless[-1]}

    # -- the rules -----------------------------------------------------------------------

    def fire(self, trigger: str, kwargs: bytes, value: JsonDict | None = None) -> bool:
        """Record a firing and move every task it concerns on; False if it was ignored.

        ``value`` is ``kwargs`` decoded, when the caller has it already (a task's result).
        """
        if trigger == SESSION_FINALIZED:
            if self.has_fired(SESSION_FINALIZED):
                return False
            self.changes.metadata = {"finalizedAt": self.now}
        recorded = self.view.recorded(trigger)
        first = not recorded and not self.has_fired(trigger)
        if not recorded:
            self.changes.fired[trigger] = kwargs
            if first:
                self.changes.new_triggers.append(trigger)
                self.changes.at = self.now
        if value is not None:
            self._decoded[trigger] = value
        elif self._decoded:
            self._decoded.pop(trigger, None)
        counts = self.changes.first_fired
        for config in self.view.tasks_for(trigger):
            if first and trigger in config.required:
                counts[config.name] = counts.get(config.name, 0) + 1
            self._evaluate(config, trigger)
        return True

    def fire_once(self, trigger: str, kwargs: bytes, key: str) -> Firing:
        """:meth:`fire`, at most once per session and ``key``: a repeat changes nothing and
        answers what the first firing did. Raises :class:`FireKeyReusedError` when the key
        was fired with another trigger or other kwargs."""
        digest = kwargs_digest(kwargs)
        stored = self.view.fire_record(key)
        if stored is not None:
            record = loads(stored)
            if record.get("trigger") != trigger or record.get("kwargs") != digest:
                first = record.get("trigger")
                raise FireKeyReusedError(
                    f"fire key {key!r} was first used with other kwargs (firing {trigger!r})"
                    if first == trigger else
                    f"fire key {key!r} was first used for a firing of {first!r}, not {trigger!r}")
            return Firing(trigger, key, record.get("firedAt"), tuple(record.get("scheduled", ())),
                          repeated=True)
        if not self.fire(trigger, kwargs):
            return Firing(trigger, key, ignored=True)
        scheduled = tuple(instance.name for instance, _, _ in self.changes.schedule)
        record = {"trigger": trigger, "kwargs": digest, "firedAt": self.now,
                  "scheduled": list(scheduled)}
        self.changes.fire_key = (key, dumps(record))
        return Firing(trigger, key, self.now, scheduled)

    def _vetoed(self, config: TaskConfig) -> bool:
        return bool(config.unless) and all(self.has_fired(t) for t in config.unless)

    def _unfired(self, config: TaskConfig) -> int:
        return sum(not self.has_fired(t) for t in config.requires)

    def missing(self, config: TaskConfig) -> int:
        """How many of the task's ``requires`` have not fired: the store's count, less the
        first firings of this transition. One number, however many triggers a task waits
        for: proving "not ready" needs no look at the triggers themselves."""
        counted = self.changes.missing
        stored = counted.get(config.name) if counted is not None else self.view.missing(config.name)
        if stored is None:
            return self._unfired(config)
        return stored - self.changes.first_fired.get(config.name, 0)

    def _ready(self, config: TaskConfig) -> bool:
        return self.missing(config) == 0

    def _evaluate(self, config: TaskConfig, trigger: str) -> None:
        # Read, not depended on: what is decided on it is checked by what it writes (a new
        # instance's number, the instances it edits) or peeked again where it is not.
        state = self.changes.states.get(config.name) or self.view.state(config.name)
        if config.unless and self._vetoed(config):
            if trigger in config.unless:
                self.abandon_pending(config, self._reason(config, trigger))
            elif trigger == config.and_every:
                self._record_abandoned(config, trigger, self._reason(config))
            return
        if state.blocked is not None:
            if trigger == config.and_every:
                self._record_abandoned(config, trigger, state.blocked)
            return
        if config.and_every is None:
            self._evaluate_one_shot(config, state, trigger)
        else:
            self._evaluate_every(config, state, trigger)

    def _record_abandoned(self, config: TaskConfig, trigger: str, reason: JsonDict) -> None:
        """An ``andEvery`` firing of a task that can never run: its instance, abandoned at
        once (every firing leaves a record)."""
        self.create(config, TaskStatus.ABANDONED, {trigger: self.kwargs_of(trigger)},
                    {"abandoned": reason}, notice="abandoned", any_number=True)

    def _evaluate_one_shot(self, config: TaskConfig, state: TaskState, trigger: str) -> None:
        if state.next == 0:
            # The first firing this task sees: its instance exists from now on.
            if self._ready(config):
                self.schedule_new(config)
            else:
                self.wait(config, trigger)
        elif state.may_schedule and self._ready(config):
            self._schedule_unstarted(config)

    def _evaluate_every(self, config: TaskConfig, state: TaskState, trigger: str) -> None:
        created = None
        if trigger == config.and_every:
            created = self._take_every(config, state, trigger)
        elif state.next == 0:
            # A vacant #0: it waits for an andEvery firing as well as for its triggers.
            vacant = self.wait(config, trigger)
            self.edit_state(config.name).vacant = vacant.name
            return
        if not self._ready(config):
            return
        if created is not None and self.view.missing(config.name) == 0 and state.vacant is None:
            # Ready before this transition: every earlier instance was scheduled when it
            # was created, so this one is the only one waiting.
            self.schedule(config, created)
            return
        self._schedule_unstarted(config)

    def _take_every(self, config: TaskConfig, state: TaskState, trigger: str) -> TaskInstance:
        """An ``andEvery`` firing: the vacant instance takes it, or a new one is created."""
        own = {trigger: self.kwargs_of(trigger)}
        if state.next == 0:
            self.peek_state(config.name)  # another writer's first instance may be vacant
        if state.vacant is not None:
            self.edit_state(config.name).vacant = None
            vacant = self.instance(state.vacant)
            if vacant.status is _UNSTARTED:
                return self.put(vacant, _UNSTARTED, kwargs={**vacant.kwargs, **own})
        return self.wait(config, trigger, own, any_number=True)

    def _schedule_unstarted(self, config: TaskConfig) -> None:
        """The task became ready: schedule its instances that waited (each as it is now:
        the list may come from what a store knew), but a vacant one."""
        state = self.peek_state(config.name)
        for name in state.pending():
            if state.open[name] == _UNSTARTED and name != state.vacant:
                instance = self.instance(name)
                if instance.status is _UNSTARTED:
                    self.schedule(config, instance)

    def claim(self, name: str, lease: Lease | None = None) -> tuple[TaskInstance, TaskConfig] | None:
        """scheduled -> running, exactly once; None when the instance is not scheduled.

        With a ``lease`` the claim is recorded in ``metadata["claim"]``, and a
        running instance whose lease expired is taken over (see :mod:`.claims`)
        — or, when its attempts reached ``lease.max_attempts``, failed with a
        ``WorkerLostError`` (None is returned: there is nothing to run).
        """
        instance = self.changes.instances.get(name) or self.view.instance(name)
        if instance is None:
            return None
        if instance.status is _SCHEDULED:
            claim = None if lease is None else Claim.start(lease, 1, self.now)
        else:
            if lease is None or instance.status is not _RUNNING:
                return None
            held = claim_of(instance)
            if held is None or not held.expired(self.now):
                return None
            if lease.max_attempts is not None and held.attempt >= lease.max_attempts:
                self.put(instance, TaskStatus.FAILED,
                         metadata=held.lost_metadata(name, lease.max_attempts), notice="failed",
                         config=self.config_of(instance), extra={"exception": None})
                return None
            claim = held.taken_over(lease, self.now)
        config = self.config_of(instance)
        meta = None if claim is None else {"claim": claim.to_json()}
        running = self.put(instance, _RUNNING, metadata=meta, notice="started",
                           config=config)
        return running, config

    def renew(self, name: str, token: str, seconds: float) -> bool:
        """Extend the lease of a running instance held by ``token``; False if it is not."""
        instance = self.changes.instances.get(name) or self.view.instance(name)
        if instance is None or not self.holds(instance, token):
            return False
        held = claim_of(instance)
        assert held is not None
        self.put(instance, instance.status,
                 metadata={"claim": held.renewed(self.now, seconds).to_json()})
        return True

    @staticmethod
    def holds(instance: TaskInstance, token: str | None) -> bool:
        """``instance`` is running and, when ``token`` is given, claimed with it."""
        if instance.status is not _RUNNING:
            return False
        if token is None:
            return True
        held = claim_of(instance)
        return held is not None and held.token == token

    def complete(self, name: str, result: bytes, log_level: int, cascade: bool = True,
                 token: str | None = None, value: JsonDict | None = None) -> bool:
        """running -> finished with ``result`` (``value``: it decoded, when the caller has it);
        the task's name fires with it as kwargs.

        False (nothing changes) unless the instance is running (claimed with ``token``).
        """
        instance = self.instance(name)
        if not self.holds(instance, token):
            return False
        config = self.config_of(instance)
        if value is None:
            value = loads(result)
        self.put(instance, TaskStatus.FINISHED, metadata={"result": value}, log_level=log_level,
                 notice="completed", config=config, extra={"result": value})
        if cascade:
            self.fire(instance.task_name, result, value)
        return True

    def fail(self, name: str, metadata: JsonDict, log_level: int,
             exception: BaseException | None = None, token: str | None = None) -> TaskInstance | None:
        """running -> failed, recording what went wrong; None unless it is running (with ``token``)."""
        instance = self.instance(name)
        if not self.holds(instance, token):
            return None
        return self.put(instance, TaskStatus.FAILED, metadata=metadata, log_level=log_level,
                        notice="failed", config=self.config_of(instance),
                        extra={"exception": exception})

    def set_status(self, name: str, status: TaskStatus, metadata: JsonDict | None,
                   cascade: bool, cascade_kwargs: bytes,
                   log_level: int | None = None, token: str | None = None,
                   force: bool = False) -> TaskInstance:
        """Any status, set by hand or by a task's :class:`StatusChange`; ``cascade`` fires
        the task's name with ``cascade_kwargs``. A finished instance always gets a result.
        By hand (no ``token``), a running instance whose lease is live is refused unless
        ``force``."""
        instance = self.instance(name)
        if token is not None and not self.holds(instance, token):
            return instance  # a task whose claim was taken over: the new holder decides
        if token is None and not force:
            self._refuse_live(instance, status)
        config = self.config_of(instance)
        extra: JsonDict = {}
        if status is TaskStatus.FINISHED:
            metadata = dict(metadata or {})
            if "result" not in metadata:
                metadata["result"] = (loads(cascade_kwargs) if cascade
                                      else instance.metadata.get("result", {}))
            extra["result"] = metadata["result"]
        elif status is TaskStatus.FAILED:
            extra["exception"] = None
        updated = self.put(instance, status, metadata=metadata, notice=_NOTICES.get(status),
                           config=config, extra=extra, log_level=log_level,
                           kwargs=self._leaving_wait(config, instance, status))
        if status is _SCHEDULED:
            self.changes.schedule.append((updated, config, 0.0))
        elif status is TaskStatus.ABANDONED and instance.status is not status:
            for task, why in self._stranded(config, name, {}):
                self.abandon_pending(task, why)
        if cascade:
            self.fire(config.name, cascade_kwargs)
        return updated

    def _leaving_wait(self, config: TaskConfig, instance: TaskInstance,
                      status: TaskStatus) -> JsonDict | None:
        """The kwargs a waiting instance keeps when it leaves ``unstarted`` by hand: what it
        received (to run with, when scheduled); ``None`` for any other instance."""
        if instance.status is not _UNSTARTED or status is _UNSTARTED:
            return None
        return (self.run_kwargs(config, instance) if status is _SCHEDULED
                else self.applied(config, instance))

    def _refuse_live(self, instance: TaskInstance, status: TaskStatus) -> None:
        held = claim_of(instance) if instance.status is _RUNNING else None
        if held is not None and not held.expired(self.now) and status is not _RUNNING:
            raise InvalidStatusError(
                f"{instance.name} is running on {held.worker or 'a worker'} (attempt "
                f"{held.attempt}), whose lease holds until {held.expires_at}: setting it "
                f"{status.value} by hand would let that worker end it too; wait for the "
                "lease to expire, or pass force=True")

    def _failed(self, name: str, action: str, done: str) -> TaskInstance:
        """The instance to replay or skip: only a failed one can be."""
        instance = self.instance(name)
        if instance.status is not TaskStatus.FAILED:
            raise InvalidStatusError(
                f"cannot {action} {name}: it is {instance.status.value}, only failed instances "
                f"can be {done}")
        return instance

    def replay(self, name: str, replacement_kwargs: JsonDict | None, countdown: float = 0.0,
               metadata: JsonDict | None = None) -> TaskInstance:
        """failed -> replayed, and a copy of it scheduled with ``metadata["parent"]``.

        The copy runs with the failed instance's kwargs, or with
        ``replacement_kwargs`` (``withParams`` merged under them).
        """
        instance = self._failed(name, "replay", "replayed")
        config = self.config_of(instance)
        self.put(instance, TaskStatus.REPLAYED, notice="replayed", config=config)
        meta: JsonDict = {"parent": name, **(metadata or {})}
        if replacement_kwargs is None:
            kwargs = instance.kwargs
        else:
            kwargs = _merge_params(dict(replacement_kwargs), config.with_params)
        return self.schedule_new(config, kwargs, countdown, meta)

    def skip(self, name: str, cascade: bool, result: bytes,
             value: JsonDict | None = None) -> TaskInstance:
        """failed -> skipped; with ``cascade``, fire the task's name with ``result`` as if
        the instance had finished (the result is then kept in its metadata)."""
        instance = self._failed(name, "skip", "skipped")
        config = self.config_of(instance)
        meta: JsonDict = {"cascade": cascade}
        if cascade:
            if value is None:
                value = loads(result)
            meta["result"] = value
        skipped = self.put(instance, TaskStatus.SKIPPED, metadata=meta, notice="skipped",
                           config=config, extra={"cascade": cascade})
        if cascade:
            self.fire(config.name, result, value)
        return skipped

    def update_metadata(self, name: str, metadata: JsonDict) -> TaskInstance:
        instance = self.instance(name)
        return self.put(instance, instance.status, metadata=metadata)

    def resolve_logs(self, name: str) -> TaskInstance:
        instance = self.instance(name)
        return self.put(instance, instance.status, mark_logs_resolved=True)

    def configure(self, configs: Mapping[str, TaskConfig]) -> None:
        """Store the merged configuration and run one-shot tasks whose triggers all fired.

        Raises :class:`ConfigurationError` (nothing stored) when the new tasks close a
        cycle with the stored ones. The first configuration stamps ``createdAt``.
        """
        existing = self.view.all_tasks()
        merged = {**existing, **configs}
        problems = cycle_problems(merged, configs)
        if problems:
            raise ConfigurationError(problems)
        self.changes.configs = merged
        self.changes.missing = {name: self._unfired(config) for name, config in merged.items()}
        if not existing:
            self.changes.metadata = {"createdAt": self.now}
        for config in configs.values():
            if config.unless and self._vetoed(config):
                self.abandon_pending(config, self._reason(config))
            elif self.peek_state(config.name).next == 0:
                self._arrive(config)
            elif config.name in existing:
                self._reconfigured(config)
        counted = [c for c in merged.values() if not c.waits_for_finalization]
        self.changes.counted = len(counted)
        self.changes.unresolved = sum(
            not self.peek_state(c.name).is_resolved for c in counted)

    def _reconfigured(self, config: TaskConfig) -> None:
        """A task replaced while it has instances: a vacant one of a task that no longer has
        an ``andEvery`` trigger waits only for its ``after`` triggers now, and waiting ones
        whose triggers have all fired under the new configuration are scheduled."""
        state = self.peek_state(config.name)
        if config.and_every is None and state.vacant is not None:
            self.edit_state(config.name).vacant = None
        if state.blocked is None and _UNSTARTED.value in state.open.values() and self._ready(config):
            self._schedule_unstarted(config)

    # -- recovery ------------------------------------------------------------------------

    def recover(self, name: str, grace: float) -> TaskInstance | None:
        """Hand a stuck instance to its runner again, or fail it when its worker was lost
        as often as its claim allows; None when it is not stuck (see :mod:`.recovery`)."""
        instance = self.changes.instances.get(name) or self.view.instance(name)
        if instance is None or instance.status not in _OPEN_WORK:
            return None
        return self._recover(instance, grace)

    def _recover(self, instance: TaskInstance, grace: float) -> TaskInstance | None:
        found = stuck(instance, grace, self.now)
        if found is None:
            return None
        config = self.config_of(instance)
        claim = claim_of(instance)
        if found.exhausted and claim is not None and claim.max_attempts is not None:
            return self.put(instance, TaskStatus.FAILED,
                            metadata=claim.lost_metadata(instance.name, claim.max_attempts),
                            notice="failed", config=config, extra={"exception": None})
        handed = self.put(instance, instance.status, metadata=handed_again(instance, self.now))
        self.changes.recover.append((handed, config))
        return handed

    def _arrive(self, config: TaskConfig) -> None:
        """A task without instances that some of its triggers fired for already (configured
        after them, or left so by a process that died): its first instance, as their first
        firing would have made it."""
        used = config.triggers if config.and_every is None else (*config.requires, *config.unless)
        if not any(map(self.has_fired, used)):
            return  # (past firings of an andEvery trigger bring no instance)
        if config.and_every is None:
            if config.requires and self._ready(config):
                self.schedule_new(config)
            else:
                self.wait(config)
        else:
            self.edit_state(config.name).vacant = self.wait(config).name

    def reevaluate(self, trigger: str) -> None:
        """Apply the rules to the tasks ``trigger`` concerns as if it had just fired, without
        recording a firing: what a process killed between a firing and its follow-up left
        undone (a ready task without its instance, a vetoed one still waiting) is done."""
        for config in self.view.tasks_for(trigger):
            state = self.peek_state(config.name)
            if config.unless and self._vetoed(config):
                if state.next == 0 or state.pending():
                    self.abandon_pending(config, self._reason(config))
            elif state.blocked is not None:
                continue
            elif state.next == 0:
                self._arrive(config)
            elif self._ready(config):
                self._schedule_unstarted(config)

    # -- finishing -----------------------------------------------------------------------

    def finish(self) -> Changes:
        """Close the transition: count tasks that became resolved or unresolved."""
        changes = self.changes
        if self._before and changes.configs is None:
            delta = 0
            for task, was_resolved in self._before.items():
                config = self.view.task(task)
                if config is None or config.waits_for_finalization:
                    continue
                delta += was_resolved - changes.states[task].is_resolved
            changes.unresolved_delta = delta
        return changes


def transition(body: Callable[[Transition], Any], grace: float | None = None) -> Compute:
    """The ``compute`` that ``StorageBackend.transact`` runs for one step of the rules:
    ``body`` acts on a fresh :class:`Transition` (recovering the stuck instances it reads
    when given a ``grace``); what it returns becomes ``changes.result``.
    Re-runnable, as optimistic backends need."""
    def compute(view: SessionView) -> Changes:
        step = Transition(view, grace)
        step.changes.result = body(step)
        return step.finish()
    return compute
