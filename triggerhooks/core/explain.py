"""Why a task has not run (or has): the answer to the question users ask most.

:func:`explain` walks a :class:`SessionView` from one task down the triggers it
still waits for: a trigger that is another task's name leads to that task, and
so on, down to the root causes (a trigger never fired, an instance that failed,
was abandoned, waits for a runner or is running). It reads only the tasks on
that path, never the whole session, and writes nothing.

A task reached along several paths (a diamond of cascades) is explained once: every
path shares its :class:`Explanation`, its root causes are collected once, and
:meth:`Explanation.to_json` writes it out in full where it first appears (then
``"repeated": true``). However long a chain of cascades, the walk and the root causes
go down to its head; the nesting of the JSON answer (and of the command line's tree)
stops at :data:`NESTED` tasks (``"truncated": true`` below), the root causes still
listing what lies beyond.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from ..exceptions import InstanceNotFoundError
from ..models import TaskConfig, TaskInstance, TaskStatus, instance_name, split_instance_name
from ..serialization import JsonDict
from .leases import claim_of
from .types import SessionView, TaskState, read_first

__all__ = ["Explanation", "InstanceFact", "TriggerFact", "explain"]

_SHOWN = 20
"""Instances of one task an explanation lists at most (the unresolved ones first)."""

NESTED = 50
"""How many tasks deep :meth:`Explanation.to_json` (and ``triggerhooks why``) nests the
upstream explanations; the root causes always reach the end of the walk."""


@dataclass(frozen=True, slots=True)
class InstanceFact:
    """Where one instance stands, and since when."""

    name: str
    status: str
    since: str | None
    """When it reached its status."""
    detail: str
    """One line, for people: what it waits for, how it failed, why it was abandoned."""
    runner: str | None = None
    worker: str | None = None
    lease_until: str | None = None
    exception_type: str | None = None
    abandoned: JsonDict | None = None
    """``metadata["abandoned"]``: the ``unless`` trigger, the upstream instance."""


@dataclass(frozen=True, slots=True)
class TriggerFact:
    """One trigger a task uses: fired or not, and when it first fired."""

    trigger: str
    fired: bool
    fired_at: str | None = None
    upstream: Explanation | None = None
    """For a task's name that has not fired: why that task has not finished."""


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why ``task`` is where it is. JSON-serialisable through :meth:`to_json`."""

    task: str
    state: str
    """``waiting``, ``ready``, ``scheduled``, ``running``, ``failed``, ``finished``,
    ``abandoned``, ``vetoed``, ``blocked``, or ``unknown`` (no such task)."""
    summary: str
    after: list[TriggerFact] = field(default_factory=list)
    unless: list[TriggerFact] = field(default_factory=list)
    and_every: str | None = None
    waiting_firings: int = 0
    """For an ``andEvery`` task: instances created by its firings that wait for ``after``."""
    instances: list[InstanceFact] = field(default_factory=list)
    instance: str | None = None
    """The instance asked about, when the question was about one."""

    @property
    def root_causes(self) -> list[str]:
        """The leaves of the walk, one line each: what would have to change."""
        return _root_causes(self)

    def upstreams(self) -> list[Explanation]:
        """The explanations of the missing ``after`` triggers that are tasks' names."""
        return [fact.upstream for fact in self.after
                if not fact.fired and fact.upstream is not None]

    def to_json(self) -> JsonDict:
        """The answer as JSON data, with its root causes: each task in full where it first
        appears, ``"repeated": true`` (and nothing below) where it appears again,
        ``"truncated": true`` past :data:`NESTED` tasks deep."""
        seen: set[int] = set()
        top = self._json_node(seen, 0)
        stack = [(top, self, 0)]
        while stack:  # no recursion: a chain of cascades may be long
            data, found, depth = stack.pop()
            for fact_data, fact in zip(data["after"], found.after, strict=True):
                upstream = fact.upstream
                if upstream is None:
                    continue
                child = upstream._json_node(seen, depth + 1)
                fact_data["upstream"] = child
                if not (child.get("repeated") or child.get("truncated")):
                    stack.append((child, upstream, depth + 1))
        top["root_causes"] = self.root_causes
        return top

    def _json_node(self, seen: set[int], depth: int) -> JsonDict:
        """This explanation without its upstream explanations (filled in by the caller)."""
        data: JsonDict = {"task": self.task, "state": self.state, "summary": self.summary}
        shortened = ("repeated" if id(self) in seen
                     else "truncated" if depth > NESTED and self.upstreams() else None)
        seen.add(id(self))
        facts = [] if shortened else self.after
        data["after"] = [{"trigger": fact.trigger, "fired": fact.fired,
                          "fired_at": fact.fired_at, "upstream": None} for fact in facts]
        data["unless"] = [] if shortened else [asdict(fact) for fact in self.unless]
        data["and_every"] = self.and_every
        data["waiting_firings"] = self.waiting_firings
        data["instances"] = [] if shortened else [asdict(each) for each in self.instances]
        data["instance"] = self.instance
        if shortened:
            data[shortened] = True
        return data


_NEVER = ("vetoed", "abandoned")
"""States of a task whose missing triggers are no cause: firing them would change nothing."""


def _own_causes(found: Explanation) -> list[str]:
    """What the task itself shows: its failed, waiting, running or abandoned instances, or
    why it can never run."""
    causes = []
    for each in found.instances:
        if each.status in ("failed", "scheduled", "running") or (
                each.status == "abandoned" and (each.abandoned or found.state == "abandoned")):
            causes.append(f"{each.name}: {each.detail}")
    if found.state in ("vetoed", "blocked") and not any(
            i.status == "abandoned" for i in found.instances):
        causes.append(f"{found.task}: {found.summary}")
    elif found.state in ("waiting", "ready") and all(fact.fired for fact in found.after):
        # waiting for a firing of its andEvery trigger, or for a recovery
        causes.append(f"{found.task}: {found.summary}")
    return causes


def _root_causes(top: Explanation) -> list[str]:
    """The root causes under ``top``: for each missing ``after`` trigger, what stops its
    task if it is one (else that it never fired); then what the task itself shows. A
    vetoed or abandoned task's missing triggers are no cause (firing them changes
    nothing), nor are a blocked one's that are not tasks. Each explanation is visited
    once, however many paths lead to it."""
    done: dict[int, list[str]] = {}
    stack = [(top, False)]
    while stack:
        found, expanded = stack.pop()
        if id(found) in done:
            continue
        if not expanded:
            stack.append((found, True))
            stack += [(up, False) for up in found.upstreams() if id(up) not in done]
            continue
        causes: list[str] = []
        for fact in found.after:
            if fact.fired or found.state in _NEVER:
                continue
            upstream = fact.upstream
            below = done.get(id(upstream), []) if upstream is not None and (
                upstream.state != "unknown") else []
            if below:
                causes += below
            elif found.state != "blocked":  # (blocked: by an upstream task, not a trigger)
                causes.append(f"trigger {fact.trigger!r} never fired")
        causes += _own_causes(found)
        done[id(found)] = list(dict.fromkeys(causes))
    return done[id(top)]


def _stamp(instance: TaskInstance) -> str | None:
    stamps = instance.metadata.get("timestamps")
    if isinstance(stamps, dict):
        value = stamps.get(instance.status.value)
        return value if isinstance(value, str) else None
    return None


def _ago(then: str | None, now: str) -> str:
    if then is None:
        return ""
    try:
        seconds = (datetime.fromisoformat(now) - datetime.fromisoformat(then)).total_seconds()
    except ValueError:
        return ""
    if seconds < 120:
        return f" for {seconds:.0f} s"
    if seconds < 7200:
        return f" for {seconds / 60:.0f} min"
    return f" for {seconds / 3600:.1f} h"


def _abandon_reason(reason: Any) -> str:
    if not isinstance(reason, dict):
        return "abandoned"
    parts = []
    if reason.get("upstream"):
        parts.append(f"it waited for {reason['upstream']}, which was abandoned")
    if reason.get("unless"):
        parts.append(f"unless trigger {reason['unless']!r} fired")
    return "abandoned: " + "; ".join(parts) if parts else "abandoned by hand"


def _instance_fact(instance: TaskInstance, config: TaskConfig, state: TaskState,
                   runner: str, now: str) -> InstanceFact:
    status = instance.status
    since = _stamp(instance)
    meta = instance.metadata
    if status is TaskStatus.UNSTARTED:
        detail = (f"waits for a firing of its andEvery trigger {config.and_every!r}"
                  if instance.name == state.vacant else "waits for its after triggers")
        return InstanceFact(instance.name, status.value, since, detail)
    if status is TaskStatus.SCHEDULED:
        used = config.using or runner
        return InstanceFact(instance.name, status.value, since,
                            f"scheduled{_ago(since, now)}, not claimed yet by runner {used!r}",
                            runner=used)
    if status is TaskStatus.RUNNING:
        claim = claim_of(instance)
        if claim is None:
            return InstanceFact(instance.name, status.value, since, f"running{_ago(since, now)}")
        state_of = "expired" if claim.expired(now) else "holds"
        return InstanceFact(
            instance.name, status.value, since,
            f"running{_ago(since, now)} on {claim.worker or 'a worker'} (attempt "
            f"{claim.attempt}); its lease {state_of} until {claim.expires_at}",
            worker=claim.worker, lease_until=claim.expires_at)
    if status is TaskStatus.FAILED:
        kind = meta.get("exceptionType")
        shown = str(kind) if kind else "an error"
        return InstanceFact(instance.name, status.value, since,
                            f"failed with {shown}: replay or skip it",
                            exception_type=str(kind) if kind else None)
    if status is TaskStatus.ABANDONED:
        reason = meta.get("abandoned")
        return InstanceFact(instance.name, status.value, since, _abandon_reason(reason),
                            abandoned=reason if isinstance(reason, dict) else None)
    return InstanceFact(instance.name, status.value, since, status.value)


class _Walk:
    """One explanation's reads, remembered (a task reached twice is read once)."""

    def __init__(self, view: SessionView, now: str, runner: str) -> None:
        self.view = view
        self.now = now
        self.runner = runner
        self.done: dict[str, Explanation] = {}

    def fired_at(self, trigger: str) -> str | None:
        record = self.view.first(trigger)
        return read_first(record)[0] if record is not None else None

    def trigger(self, trigger: str) -> TriggerFact:
        if self.view.fired(trigger):
            return TriggerFact(trigger, True, self.fired_at(trigger))
        return TriggerFact(trigger, False, upstream=self.done.get(trigger))

    def instances(self, config: TaskConfig, state: TaskState, focus: str | None) -> list[TaskInstance]:
        names = list(state.open)[:_SHOWN]
        if state.next and instance_name(config.name, state.next - 1) not in names:
            names.append(instance_name(config.name, state.next - 1))
        if focus is not None and focus not in names:
            names.insert(0, focus)
        found = [self.view.instance(name) for name in names]
        return [instance for instance in found if instance is not None]

    def upstream_tasks(self, config: TaskConfig) -> list[str]:
        """The missing ``after`` triggers of ``config`` that are tasks' names."""
        view = self.view
        view.prefetch_first((*config.requires, *config.unless))
        return [trigger for trigger in config.requires
                if not view.fired(trigger) and view.task(trigger) is not None]

    def task(self, name: str, focus: str | None = None) -> Explanation:
        """``name``'s explanation, its upstream ones first (depth first, without recursion:
        a chain of cascades may be long)."""
        stack = [(name, False)]
        while stack:
            current, expanded = stack.pop()
            if current in self.done and not (current == name and focus is not None):
                continue
            config = self.view.task(current)
            if config is None:
                self.done[current] = Explanation(
                    current, "unknown", f"no task named {current!r} in this session")
                continue
            if expanded:
                self.done[current] = self.build(config, focus if current == name else None)
                continue
            stack.append((current, True))
            stack += [(up, False) for up in self.upstream_tasks(config) if up not in self.done]
        return self.done[name]

    def build(self, config: TaskConfig, focus: str | None) -> Explanation:
        """The explanation of ``config``'s task, its upstream tasks explained already."""
        name = config.name
        state = self.view.state(name)
        instances = self.instances(config, state, focus)
        facts = [_instance_fact(i, config, state, self.runner, self.now) for i in instances]
        after = [self.trigger(t) for t in config.requires]
        unless = [TriggerFact(t, self.view.fired(t),
                              self.fired_at(t) if self.view.fired(t) else None)
                  for t in config.unless]
        waiting = sum(1 for n, s in state.open.items()
                      if s == TaskStatus.UNSTARTED.value and n != state.vacant)
        status, summary = _summary(config, state, instances, after, unless, waiting)
        return Explanation(name, status, summary, after, unless, config.and_every,
                           waiting if config.and_every else 0, facts, focus)


def _summary(config: TaskConfig, state: TaskState, instances: list[TaskInstance],
             after: list[TriggerFact], unless: list[TriggerFact],
             waiting: int) -> tuple[str, str]:
    """The task's state in a word, and a line for people."""
    missing = [fact.trigger for fact in after if not fact.fired]
    if unless and all(fact.fired for fact in unless):
        return "vetoed", "vetoed: every unless trigger fired (" + ", ".join(
            repr(fact.trigger) for fact in unless) + ")"
    if state.blocked is not None:
        return "blocked", _abandon_reason(state.blocked).replace("abandoned: ", "can never run: ")
    statuses = {i.status for i in instances if i.name in state.open}
    for status, line in ((TaskStatus.RUNNING, "an instance is running"),
                         (TaskStatus.SCHEDULED, "an instance waits for its runner"),
                         (TaskStatus.FAILED, "an instance failed")):
        if status in statuses:
            return status.value, line
    last = instances[-1] if instances else None
    if config.and_every is None and last is not None and not state.open:
        # One-shot and resolved (run, or abandoned or finished by hand while it waited):
        # its missing triggers no longer matter.
        return _resolved(last)
    if missing:
        shown = ", ".join(map(repr, missing))
        backlog = f"; {waiting} andEvery firing(s) wait" if config.and_every else ""
        return "waiting", (f"waits for {len(missing)} of {len(after)} after trigger(s): "
                           f"{shown}{backlog}")
    if config.and_every is not None and (state.vacant is not None or state.next == 0):
        return "waiting", f"waits for a firing of its andEvery trigger {config.and_every!r}"
    if state.next == 0 or TaskStatus.UNSTARTED in statuses:
        return "ready", "every trigger fired: a recovery schedules it"
    return _resolved(last)


def _resolved(last: TaskInstance | None) -> tuple[str, str]:
    """A task with nothing unresolved: where its last instance ended."""
    if last is not None and last.status is TaskStatus.ABANDONED:
        return "abandoned", _abandon_reason(last.metadata.get("abandoned"))
    return "finished", "ran: every instance is resolved"


def explain(view: SessionView, target: str, now: str, runner: str) -> Explanation:
    """Why the task (or the task of the instance) ``target`` is where it is; ``runner`` is
    the manager's default runner (for tasks without ``using``)."""
    focus = None
    if "#" in target and view.task(target) is None:
        task, _ = split_instance_name(target)
        if view.instance(target) is None:
            raise InstanceNotFoundError(f"no task instance named {target!r} in this session")
        target, focus = task, target
    return _Walk(view, now, runner).task(target, focus=focus)
